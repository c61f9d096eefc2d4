"""Plain-text views for the CLI: the status card, transcript lines, results. Pure functions of the API's JSON.

Every string in that JSON may come from the peer (labels, topic, goal, text, values, reasons), so every one
goes through `safe` before it reaches the terminal: a peer must not be able to send escape sequences to
the owner's terminal or forge a line of the transcript (SPEC §5, "Strings").

No imports beyond the standard library: rendering must not slow the CLI down.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from typing import Any, NamedTuple

# Shown as a mark, not obeyed: controls (C0, DEL, C1), format characters (bidi overrides and isolates,
# zero-width characters, invisible tags) save the two joiners emoji and some scripts need, line and
# paragraph separators, and lone surrogates (which could not even be printed).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_JOINERS = frozenset({"\u200c", "\u200d"})
_MARKS = {"\n": "\u23ce", "\r": "\\r", "\t": "\\t"}  # newline as ⏎, so one logical line stays one line


def _escaped(ch: str) -> bool:
    return ch not in _JOINERS and unicodedata.category(ch) in _ESCAPED_CATEGORIES


def _mark(ch: str) -> str:
    if ch in _MARKS:
        return _MARKS[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def safe(value: object) -> str:
    """`value` as text that is harmless on a terminal and stays on one line: ESC shows as `\\x1b`, a newline
    as ⏎ (a CR LF pair too), a bidi override as `\\u202e`; everything printable is left as it is."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: nothing to do (non-ASCII spaces and the like fall through)
        return text
    return "".join(_mark(ch) if _escaped(ch) else ch for ch in text.replace("\r\n", "\n"))


def _json_escape(ch: str) -> str:
    data = ch.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(data[i : i + 2], 'big'):04x}" for i in range(0, len(data), 2))


def json_line(value: Any) -> str:
    """One line of JSON for `--json`, as readable as ensure_ascii=False, but with every character `safe`
    would escape written as a \\u escape: the same JSON value, and nothing a terminal would obey."""
    text = json.dumps(value, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(_json_escape(ch) if _escaped(ch) else ch for ch in text)


def fmt_duration(ms: int | float | None) -> str:
    """12.4s, 3m 05s, 2h 03m, 1d 04h."""
    if ms is None:
        return "-"
    s = max(float(ms), 0.0) / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def fmt_offset(ms: int) -> str:
    """Time since the room was created, as the seed transcript shows it: mm:ss.mmm."""
    ms = max(int(ms), 0)
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def short_id(peer_id: str | None) -> str:
    """The first two groups of a peer id: enough to tell daemons apart on a card."""
    if not peer_id:
        return "-"
    return safe("-".join(str(peer_id).split("-")[:2]))


def _label(participants: dict[str, Any], role: str) -> str:
    p = participants.get(role) or {}
    return safe(p.get("label") or role)


# ------------------------------------------------------------------------------------------- status card
def status_card(view: dict[str, Any]) -> str:
    """The room's status card (result of room.status), laid out like the product page's live session."""
    role = safe(view.get("role", "?"))
    parts = view.get("participants") or {}
    lines = [f"Live Session {safe(view.get('room_id', '?'))}"]
    lines.append(f"Room: {safe(view.get('topic', ''))}")
    if view.get("goal"):
        lines.append(f"Goal: {safe(view['goal'])}")
    link = "peer connected" if view.get("peer_connected") else "peer not connected"
    lines.append(f"Status: {safe(view.get('lifecycle', '?')).upper()}  (you are the {role}; {link})")
    lines.append("Participants:")
    names = {
        r: _label(parts, r) if r == "host" or (parts.get(r) or {}).get("peer_id") else "(not joined yet)"
        for r in ("host", "guest")
    }
    width = max(len(n) for n in names.values())
    for r in ("host", "guest"):
        p = parts.get(r) or {}
        you = "  (you)" if r == role else ""
        lines.append(f"  {r:<5}  {names[r]:<{width}}  {short_id(p.get('peer_id'))}{you}")
    lines.extend(_owner_lines(view.get("owner")))
    max_turns = view.get("max_turns")
    lines.append(
        f"Messages {view.get('messages', 0)} · Duration {fmt_duration(view.get('duration_ms'))} · "
        f"Outcomes {view.get('agreed', 0)}/{view.get('required', 0)} · "
        f"turn {view.get('turns', 0)}/{max_turns if max_turns is not None else '?'}"
    )
    lines.append(f"Whose turn: {whose_turn(view)}")
    fields = view.get("fields") or []
    if fields:
        lines.append("Fields:")
        field_names = [safe(f.get("name")) for f in fields]
        fw = max(len(n) for n in field_names)
        for name, f in zip(field_names, fields, strict=True):
            status = safe(f.get("status", "open"))
            if status == "agreed":
                detail = safe(f.get("value"))
            elif f.get("proposals"):
                detail = " · ".join(f"{safe(r)}: '{safe(v)}'" for r, v in sorted(f["proposals"].items()))
            else:
                detail = safe(f.get("description") or "")
            lines.append(f"  {name:<{fw}}  {status:<8}  {detail}".rstrip())
    pending = view.get("pending_close")
    if pending:
        waiting = "guest" if pending.get("proposer") == "host" else "host"
        lines.append(
            f"Pending close: the {safe(pending.get('proposer'))} proposed closing as {safe(pending.get('status'))}; "
            f"waiting for the {waiting} to countersign"
        )
    if view.get("consulting"):
        lines.append(f"Consulting its owner: {', '.join(map(safe, view['consulting']))}")
    result = view.get("result")
    if result:
        lines.append("Result: " + result_line(result, max_turns=max_turns, required=view.get("required")))
    if view.get("join_url"):
        lines.append(f"Join URL: {safe(view['join_url'])}")
    return "\n".join(lines)


def _owner_lines(owner: Any) -> list[str]:
    """Our own owner's context on the card, as the product page shows it (the peer's we never hold)."""
    if not isinstance(owner, dict):
        return []
    lines = [f"Owner Context ({safe(owner.get('owner_name') or '?')}, yours; kept on this machine)"]
    if owner.get("role"):
        lines.append(f"  Role: {safe(owner['role'])}")
    for key, title in (("goals", "Goal"), ("constraints", "Constraint"), ("priorities", "Priority")):
        lines.extend(f"  {title}: {safe(item)}" for item in owner.get(key) or [])
    return lines


def context_text(result: dict[str, Any]) -> str:
    """`clawroom context show`: the whole context, its private facts marked as such."""
    ctx = result.get("context") or {}
    where = f"room {safe(result['room_id'])}" if result.get("room_id") else f"profile {safe(result.get('profile'))}"
    lines = [f"Owner context ({where}): {safe(result.get('path', ''))}"]
    for key, title in (("owner_name", "Owner"), ("role", "Role"), ("language", "Language")):
        if ctx.get(key):
            lines.append(f"{title}: {safe(ctx[key])}")
    if ctx.get("task_context"):
        lines.append(f"Task context: {safe(ctx['task_context'])}")
    for key, title in (("goals", "Goals"), ("constraints", "Constraints"), ("priorities", "Priorities")):
        if ctx.get(key):
            lines.append(f"{title}:")
            lines.extend(f"  - {safe(item)}" for item in ctx[key])
    if ctx.get("confirmed_facts"):
        lines.append("Confirmed facts (your agent may say these; a move cites one as fact:<id>):")
        lines.extend(f"  {safe(f.get('id'))}  {safe(f.get('text'))}" for f in ctx["confirmed_facts"])
    if ctx.get("private_facts"):
        lines.append("PRIVATE facts (never leave this machine; your agent must not say them):")
        lines.extend(f"  [private] {safe(item)}" for item in ctx["private_facts"])
    if ctx.get("limits"):
        lines.append("Limits (your agent asks you before agreeing past these):")
        lines.extend(f"  - {safe(item)}" for item in ctx["limits"])
    return "\n".join(lines)


def whose_turn(view: dict[str, Any]) -> str:
    if view.get("result"):
        return "nobody (the room is closed)"
    awaiting = list(view.get("awaiting") or [])
    if view.get("lifecycle") in ("invited", "joining"):
        return "nobody yet (waiting for the guest to join)"
    if not awaiting:
        return "nobody (the host is closing the room)" if view.get("phase") == "closing" else "nobody"
    role = view.get("role")
    names = " and ".join(map(safe, awaiting))
    if view.get("your_turn"):
        return f"{names} (yours)"
    if role in awaiting:
        return f"{names} (yours, but your side is consulting its owner)"
    return f"{names} (waiting for the peer)"


def result_line(result: dict[str, Any], *, max_turns: Any = None, required: Any = None) -> str:
    outcomes = result.get("outcomes") or {}
    total = required if required is not None else len(outcomes) + len(result.get("unresolved") or [])
    text = f"{safe(result.get('status'))}. Duration: {fmt_duration(result.get('duration_ms'))}."
    if "turns" in result:
        text += f" Turns: {safe(result['turns'])}/{safe(max_turns) if max_turns is not None else '?'}."
    text += f" Outcomes: {len(outcomes)}/{safe(total)}."
    if result.get("reason"):
        text += f" ({safe(result['reason'])})"
    return text


def result_text(result: dict[str, Any], *, max_turns: Any = None) -> str:
    """The `clawroom result` view: status line, each outcome, unresolved fields, the hashes both sides hold."""
    room, role, topic = (safe(result.get(k, d)) for k, d in (("room_id", "?"), ("role", "?"), ("topic", "")))
    lines = [f"Room {room} ({role}): {topic}"]
    lines.append("Result: " + result_line(result, max_turns=max_turns))
    outcomes = {safe(k): safe(v) for k, v in (result.get("outcomes") or {}).items()}
    if outcomes:
        lines.append("Outcomes:")
        w = max(len(k) for k in outcomes)
        lines.extend(f"  {k:<{w}}  {v}" for k, v in outcomes.items())
    if result.get("unresolved"):
        lines.append("Unresolved: " + ", ".join(map(safe, result["unresolved"])))
    if result.get("local"):
        lines.append("This result is this daemon's alone; the host did not sign it.")
    for key in ("head", "digest"):
        if result.get(key):
            lines.append(f"{'Transcript head' if key == 'head' else 'Outcome digest'}: {safe(result[key])}")
    files = result.get("files") or {}
    if files:
        lines.append(f"Result file: {safe(files.get('final_result'))}  (summary: {safe(files.get('summary'))})")
    delivery = result.get("delivery")
    if isinstance(delivery, dict):
        said = f"Delivery: {safe(delivery.get('status'))} after {safe(delivery.get('attempts'))} attempt(s)"
        lines.append(said + (f"; last error: {safe(delivery['last_error'])}" if delivery.get("last_error") else ""))
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- transcript
class Entry(NamedTuple):
    ts: int  # the author's clock, ms since the epoch
    who: str  # "system" or the author's label
    text: str
    moves: tuple[str, ...] = ()


class TranscriptRenderer:
    """Turns room events (room.event / room.transcript JSON) into seed-style lines::

        00:02.341 stripe-agent  Proposing v3 contract: ...
                                propose amount_format = integer minor units

    Feed it every event from seq 0 so it knows the creation time, labels and limits; `line` returns
    the text for one event (several lines for a message with moves).
    """

    def __init__(self, participants: dict[str, Any] | None = None) -> None:
        parts = participants or {}
        self.labels = {r: _label(parts, r) for r in ("host", "guest")}
        self.t0: int | None = None
        self.max_turns: Any = "?"
        self.required = 0
        self.messages = 0
        self.width = max(len("system"), *(len(v) for v in self.labels.values()))

    def _who(self, role: str) -> str:
        return self.labels.get(role, safe(role))

    def _row(self, ts: int, who: str, text: str) -> str:
        return f"{fmt_offset(ts - (self.t0 if self.t0 is not None else ts))} {who:<{self.width}} {text}"

    def line(self, event: dict[str, Any]) -> str:
        e = self.entry(event)
        rows = [self._row(e.ts, e.who, e.text)]
        pad = " " * (len(fmt_offset(0)) + self.width + 2)
        rows.extend(pad + m for m in e.moves)
        return "\n".join(rows)

    def entry(self, event: dict[str, Any]) -> Entry:
        """One event as (ts, who, text, moves), every part already `safe`: `line` lays it out as a
        transcript row, the live view (live_card) as a row of its tail."""
        kind, body, ts = event.get("kind"), event.get("body") or {}, int(event.get("ts", 0))
        author = str(event.get("author", "?"))
        if self.t0 is None:
            self.t0 = ts
        match kind:
            case "room_created":
                self.max_turns = safe(body.get("max_turns", "?"))
                names = [safe(f.get("name")) for f in body.get("fields", [])]
                self.required = len(names)
                return Entry(
                    ts,
                    "system",
                    f"Room created. Topic: {safe(body.get('topic'))}. Max turns: {self.max_turns}. "
                    f"Required outcomes: {', '.join(names)}.",
                )
            case "joined":
                if body.get("label"):
                    self.labels["guest"] = safe(body["label"])
                    self.width = max(self.width, len(self.labels["guest"]))
                return Entry(ts, "system", f"{self._who('host')} joined as host. {self._who('guest')} joined as guest.")
            case "message":
                self.messages += 1
                moves = tuple(move_text(m) for m in body.get("moves") or [])
                return Entry(ts, self._who(author), safe(body.get("text") or "(no text)"), moves)
            case "consult_started":
                return Entry(ts, "system", f"{self._who(author)} is consulting its owner.")
            case "consult_ended":
                return Entry(ts, "system", f"{self._who(author)} is back from consulting its owner.")
            case "close_proposed":
                out = body.get("outcome") or {}
                agreed = len(out.get("outcomes") or {})
                total = agreed + len(out.get("unresolved") or [])
                what = f"proposed closing as {safe(out.get('status'))} ({agreed}/{total} outcomes agreed)"
                return Entry(ts, "system", f"{self._who(author)} {what}.")
            case "close_accepted":
                return Entry(ts, "system", f"{self._who(author)} countersigned the close.")
            case "error":
                code = body.get("code")
                what = "cancelled the room" if code == "cancelled" else f"ended the room: {safe(code)}"
                extra = f" ({safe(body['message'])})" if body.get("message") else ""
                return Entry(ts, "system", f"{self._who(author)} {what}{extra}.")
            case "room_closed":
                out = body.get("outcome") or {}
                agreed = len(out.get("outcomes") or {})
                total = agreed + len(out.get("unresolved") or [])
                text = (
                    f"Room closed. Result: {safe(out.get('status'))}. Duration: {fmt_duration(ts - (self.t0 or ts))}. "
                    f"Turns: {self.messages}/{self.max_turns}. Outcomes: {agreed}/{total}."
                )
                if out.get("status") != "agreement_reached" and body.get("reason"):
                    text += f" Reason: {safe(body['reason'])}."
                return Entry(ts, "system", text)
        return Entry(ts, self._who(author), f"({safe(kind)})")

    def lines(self, events: Iterable[dict[str, Any]], *, from_seq: int = 0) -> list[str]:
        out = []
        for e in events:
            text = self.line(e)
            if int(e.get("seq", 0)) >= from_seq:
                out.append(text)
        return out


def move_text(move: dict[str, Any]) -> str:
    op, field = safe(move.get("op")), safe(move.get("field"))
    if op == "reject" or move.get("value") is None:
        return f"{op} {field}"
    return f"{op} {field} = {safe(move['value'])}"


# ------------------------------------------------------------------------------------------------ tables
def rooms_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No rooms on this daemon. Create one with `clawroom create --topic ... --field ...`."
    header = ("ROOM", "ROLE", "STATUS", "TURNS", "YOUR TURN", "RESULT", "TOPIC")
    table = [header]
    for r in rows:
        mt = r.get("max_turns")
        table.append(
            (
                safe(r.get("room_id")),
                safe(r.get("role")),
                safe(r.get("lifecycle", "")).upper(),
                safe(f"{r.get('turns', 0)}/{mt if mt is not None else '?'}"),
                "yes" if r.get("your_turn") else "no",
                safe(r.get("result") or "-"),
                safe(r.get("topic", "")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in table
    )


def info_text(info: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"clawroomd {info.get('version')}",
            f"Peer id:   {info.get('peer_id')}",
            f"Listening: {', '.join(info.get('listen') or []) or '-'}",
            f"State dir: {info.get('state_dir')}",
            f"Socket:    {info.get('socket')}",
            f"Rooms:     {info.get('rooms')} ({info.get('open_rooms')} open)",
        ]
    )
