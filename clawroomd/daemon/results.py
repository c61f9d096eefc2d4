"""On close, each daemon writes the room's result for its owner (SPEC §8.1):

    rooms/<id>/final_result.json   {"format", "shared", "local"}: `shared` is built from the signed events
                                   alone (core.final_result), byte-identical on both sides; `local` is ours
    rooms/<id>/summary.md          a plain account for *this* owner: the agent's own summary (room.summary),
                                   then the daemon's facts, set against the owner's goals, constraints, limits

Both 0600, written whole (store.write_room_file). A task per room waits for the close and writes them;
a room found closed on start without its files gets them then, so a crash between the close and the
write loses nothing. summary.md holds the owner's context and never leaves this machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..core.final_result import build_shared, canonical, document
from ..owner.limits import LimitError, check, parse_limit
from .clock import now_ms
from .errors import ApiError
from .live import LiveRoom
from .owner_context import OwnerContext
from .store import BadName, Store

log = logging.getLogger("clawroomd.results")

RESULT_FILE = "final_result.json"
SUMMARY_FILE = "summary.md"
AGENT_SUMMARY_FILE = "agent_summary.md"  # what the agent wrote through room.summary (kept for rewrites)
MAX_AGENT_SUMMARY = 20_000
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0)

# (room id) -> [{"question", "answer"}...]: the owner's questions and answers, from escalation (issue 9
# item 4) once it is wired; until then no questions are listed.
Questions = Callable[[str], list[dict[str, Any]]]


class Results:
    def __init__(self, store: Store, *, questions: Questions | None = None) -> None:
        self.store = store
        self.questions: Questions = questions or (lambda room_id: [])
        self.written: dict[str, trio.Event] = {}  # room id -> set once its files are on disk

    def path(self, room_id: str) -> Path:
        return self.store.room_dir(room_id) / RESULT_FILE

    def event(self, room_id: str) -> trio.Event:
        return self.written.setdefault(room_id, trio.Event())

    async def run(self, live: LiveRoom) -> None:
        """Wait for the room to close, then write its files (unless they are there already)."""
        await live.wait_closed()  # not every event: this task runs once, at the end
        if self.path(live.room_id).exists() and (self.store.room_dir(live.room_id) / SUMMARY_FILE).exists():
            self.event(live.room_id).set()
            return
        for attempt in range(1_000_000):
            try:
                self.write(live)
                return
            except OSError as err:
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.error("room %s: cannot write its result (%s); retrying in %.1f s", live.room_id, err, delay)
                await trio.sleep(delay)

    def write(self, live: LiveRoom) -> Path:
        """Write both files now (the room must be closed)."""
        doc = self.document(live)
        self.store.write_room_file(
            live.room_id,
            SUMMARY_FILE,
            render_summary(
                doc, live.owner_context, self._agent_text(live.room_id), self.questions(live.room_id)
            ).encode(),
        )
        path = self.store.write_room_file(live.room_id, RESULT_FILE, canonical(doc))
        self.event(live.room_id).set()
        log.info("room %s: result written to %s", live.room_id, path)
        return path

    def document(self, live: LiveRoom) -> dict[str, Any]:
        shared = build_shared(live.core.log, ended_locally=live.local_result)
        local: dict[str, Any] = {
            "role": live.role,
            "summary_file": SUMMARY_FILE,
            "agent_summary": self._agent_text(live.room_id) is not None,
            "written_ms": now_ms(),
        }
        return document(shared, local)

    def set_agent_summary(self, live: LiveRoom, text: str) -> Path:
        """The agent's own words for its owner; summary.md is rewritten at once if the room is closed."""
        if not text.strip() or len(text) > MAX_AGENT_SUMMARY:
            raise ApiError("bad_value", f"a summary is 1 to {MAX_AGENT_SUMMARY} characters of text")
        try:
            path = self.store.write_room_file(live.room_id, AGENT_SUMMARY_FILE, text.encode())
        except (OSError, BadName) as err:
            raise ApiError("storage_failed", f"cannot store the summary: {err}") from None
        if live.closed:
            self.write(live)
        return path

    def _agent_text(self, room_id: str) -> str | None:
        try:
            return (self.store.room_dir(room_id) / AGENT_SUMMARY_FILE).read_text()
        except FileNotFoundError:
            return None


def _who(role: str, ours: str) -> str:
    return "you" if role == ours else "the other side"


def render_summary(
    doc: dict[str, Any], ctx: OwnerContext | None, agent_text: str | None, questions: list[dict[str, Any]]
) -> str:
    """summary.md: the agent's words first, then the daemon's facts (for this owner only)."""
    s, ours = doc["shared"], doc["local"]["role"]
    out = [f"# Result: {s['topic']}", ""]
    if agent_text:
        out += ["## Your agent's summary", "", agent_text.strip(), ""]
    out += ["## What the daemon recorded", ""]
    out.append(f"- Status: **{s['status']}**" + (f" ({s['reason']})" if s["reason"] else ""))
    if s["ended_locally"]:
        out.append("- The other side was unreachable: this result is this daemon's alone, signed by nobody.")
    out.append(f"- Turns: {s['turns']} of {s['max_turns']}; duration {s['duration_ms'] / 1000:.1f} s")
    peer = next(p for p in s["participants"] if p["role"] != ours)
    out.append(f"- Other side: {peer['label'] or '(no name)'} ({peer['peer_id']}), the {peer['role']}")
    limits = []
    for text in ctx.limits if ctx else ():
        try:
            limits.append(parse_limit(text))
        except LimitError:
            continue
    out += ["", "### Agreed", ""]
    agreed = [f for f in s["fields"] if f["status"] == "agreed"]
    for f in agreed:
        p, a = f["proposed"], f["accepted"]
        out.append(
            f"- **{f['name']}** = {f['value']} (proposed by {_who(p['by'], ours)} at #{p['seq']}, "
            f"accepted by {_who(a['by'], ours)} at #{a['seq']})"
        )
        for lim in limits:
            if lim.field == f["name"]:
                verdict = check(lim, f["value"])
                said = {True: "within", False: "OUTSIDE", None: "cannot be compared with"}[verdict]
                out.append(f"  - {said} your limit `{lim.text}`")
    if not agreed:
        out.append("- nothing")
    out += ["", "### Still open", ""]
    open_fields = [f for f in s["fields"] if f["status"] != "agreed"]
    for f in open_fields:
        standing = "; ".join(
            f"{_who(role, ours)} proposed {v['value']} at #{v['seq']}" for role, v in sorted(f["standing"].items())
        )
        out.append(f"- **{f['name']}**: " + (standing or "no standing proposal"))
    if not open_fields:
        out.append("- nothing")
    if ctx is not None:
        out += ["", "### Against what you asked for", ""]
        for title, items in (("Goals", ctx.goals), ("Constraints", ctx.constraints), ("Priorities", ctx.priorities)):
            if items:
                out.append(f"- {title}: " + "; ".join(items))
        for lim in limits:
            if not any(f["name"] == lim.field for f in agreed):
                out.append(f"- Limit `{lim.text}`: its field was not agreed")
    out += ["", "### Questions to you", ""]
    out += [f"- {q.get('question', '')}: {q.get('answer', '(no answer)')}" for q in questions] or ["- none"]
    out += ["", f"Outcome digest: `{s['outcome_digest']}`; transcript head `{s['head']}`.", ""]
    out.append("`clawroom verify final_result.json --transcript transcript.jsonl` checks the signatures offline.")
    return "\n".join(out) + "\n"
