"""The live view's card (`clawroom status --watch`), laid out like the product page's "Live Session".

A pure function of the daemon's JSON (room.status, the room's events, our owner's pending question) and
the clock: `card_lines` returns the lines to show, cut to a terminal's width and height when given one.
Every string the peer could have written (labels, topic, texts, field names) goes through `render.safe`
on its way here (`TranscriptRenderer.entry` does it for events), so nothing a peer sends is obeyed by the
terminal; our own owner's context goes through it too, for one rule everywhere.

Only the standard library: the CLI stays fast.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .render import Entry, TranscriptRenderer, fmt_duration, safe, short_id

PLAIN_TAIL = 10  # transcript rows on a plain (non-terminal) card
PLAIN_STANCE = 100  # columns of a stance on a plain card
ELLIPSIS = "…"


# ------------------------------------------------------------------------------------------ text width
def _cell(ch: str) -> int:
    """Columns a terminal gives `ch`: 0 for combining marks and joiners, 2 for wide (CJK, most emoji)."""
    if unicodedata.combining(ch) or ch in "\u200c\u200d":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width_of(text: str) -> int:
    return sum(_cell(ch) for ch in text)


def fit(text: str, width: int | None) -> str:
    """`text` cut to `width` columns, with … where it was cut (None: as it is)."""
    if width is None or width_of(text) <= width:
        return text
    if width <= 0:
        return ""
    out, used = [], 0
    for ch in text:
        w = _cell(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def wrap(text: str, width: int | None, *, indent: str = "  ", max_lines: int = 3) -> list[str]:
    """`text` over up to `max_lines` lines of `width` columns, broken at spaces, the last one cut with …
    (None: one line, as it is)."""
    if width is None or width_of(text) <= width:
        return [text]
    lines: list[str] = []
    words = text.split(" ")
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else (indent if lines else "") + word
        if width_of(candidate) <= width or not line:
            line = candidate
            continue
        lines.append(line)
        line = indent + word
    lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], fit(lines[max_lines - 1] + " " + ELLIPSIS * 2, width - 1)]
    return [fit(x, width) for x in lines]


def ago(ms: float) -> str:
    """How long ago, as a person says it: now, 12s ago, 3m ago, 2h ago, 4d ago."""
    s = int(max(ms, 0) // 1000)
    if s < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


# ------------------------------------------------------------------------------------------------ parts
class Row(NamedTuple):
    kind: str
    author: str  # host, guest (also for system rows such as consult_started)
    entry: Entry


def entries(view: dict[str, Any], events: Iterable[dict[str, Any]]) -> tuple[list[Row], dict[str, str]]:
    """Each event as a Row, and each side's label (a guest's is in its `joined` event before the status
    has it). Events from seq 0: the renderer learns the labels as it goes."""
    r = TranscriptRenderer(view.get("participants"))
    rows = [Row(str(e.get("kind", "")), str(e.get("author", "")), r.entry(e)) for e in events]
    return rows, dict(r.labels)


def _said(e: Entry) -> str:
    return e.text if e.text != "(no text)" or not e.moves else "; ".join(e.moves)


def stances(rows: Sequence[Row]) -> dict[str, str]:
    """Each side's current stance: what its latest message said."""
    return {row.author: _said(row.entry) for row in rows if row.kind == "message"}


def _owner_lines(owner: Any) -> list[str]:
    if not isinstance(owner, dict):
        return ["  Owner Context: none written (clawroom context write --owner-name ...)"]
    lines = ["  Owner Context (yours; kept on this machine)"]
    if owner.get("role"):
        lines.append(f"    Role: {safe(owner['role'])}")
    for key, title in (("goals", "Goal"), ("constraints", "Constraint"), ("priorities", "Priority")):
        lines.extend(f"    {title}: {safe(item)}" for item in owner.get(key) or [])
    return lines


def _fields_line(view: dict[str, Any], width: int | None) -> str:
    marks = []
    for f in view.get("fields") or []:
        status = f.get("status")
        mark = "✓" if status == "agreed" else "~" if status == "proposed" else "·"
        marks.append(f"{mark} {safe(f.get('name'))}")
    line = "Fields: " + ("  ".join(marks) if marks else "-")
    legend = "   (✓ agreed  ~ proposed  · open)"
    return line + legend if width is None or width_of(line + legend) < width else line


def _whose(view: dict[str, Any], labels: dict[str, str]) -> str:
    if view.get("result"):
        res = view["result"]
        return f"Result: {safe(res.get('status'))}" + (f" ({safe(res['reason'])})" if res.get("reason") else "")
    if view.get("lifecycle") in ("invited", "joining"):
        return "Waiting for the guest to join"
    if view.get("pending_close"):
        p = view["pending_close"]
        return f"{labels.get(str(p.get('proposer')), '?')} proposed closing as {safe(p.get('status'))}"
    awaiting = [labels.get(r, safe(r)) for r in view.get("awaiting") or []]
    if not awaiting:
        return "Nobody's turn"
    mine = " (yours)" if view.get("your_turn") else ""
    return f"Whose turn: {' and '.join(awaiting)}{mine}"


# ------------------------------------------------------------------------------------------------- card
# What a short terminal gives up first, so the transcript tail keeps MIN_TAIL rows: higher goes first.
KEEP, SPARE_FIELDS, SPARE_GOAL, SPARE_OWNER, SPARE_FOOTER, SPARE_BLANK = 0, 1, 2, 3, 4, 5
MIN_TAIL = 3


def card_lines(
    view: dict[str, Any],
    events: Sequence[dict[str, Any]],
    *,
    now_ms: float,
    width: int | None = None,
    height: int | None = None,
    question: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    footer: str = "",
) -> list[str]:
    """The card. With `width`/`height` (a terminal) every line fits and the transcript tail takes the rows
    left (on a short terminal the blank lines, the footer, the owner's details, the goal and the fields
    line give way first); without (plain output) lines are whole and the tail is the last PLAIN_TAIL events."""
    rows, labels = entries(view, events)
    parts = view.get("participants") or {}
    me = view.get("role")
    lifecycle = safe(view.get("lifecycle", "?")).upper()
    max_turns = view.get("max_turns")
    joined = 2 if (parts.get("guest") or {}).get("peer_id") else 1
    room_id = safe(view.get("room_id", "?"))
    head = f"Live Session {room_id}"
    if width and width_of(head) + 2 + len(lifecycle) > width - 1:
        head = room_id  # a narrow terminal: the status stays in view
    pad = (width - 1 - width_of(head) - len(lifecycle)) if width else 2
    top: list[tuple[int, str]] = [(KEEP, head + " " * max(pad, 2) + lifecycle)]
    top.append((KEEP, f"Room: {safe(view.get('topic', ''))}"))
    if view.get("goal"):
        top.append((SPARE_GOAL, f"Goal: {safe(view['goal'])}"))
    top.append(
        (
            KEEP,
            f"turn {view.get('turns', 0)}/{max_turns if max_turns is not None else '?'} · "
            f"Outcomes {view.get('agreed', 0)}/{view.get('required', 0)} · Messages {view.get('messages', 0)} · "
            f"Duration {fmt_duration(view.get('duration_ms'))} · {joined} participant{'s' if joined > 1 else ''}",
        )
    )
    link = "peer connected" if view.get("peer_connected") else "peer not connected"
    top.append((KEEP, f"{_whose(view, labels)} · {link}"))
    top.append((SPARE_BLANK, ""))
    said = stances(rows)
    stance_width = (width - 1 - len("  Current Stance: ")) if width else PLAIN_STANCE
    consulting = set(view.get("consulting") or [])
    for role in ("host", "guest"):
        p = parts.get(role) or {}
        you = " (you)" if role == me else ""
        if role == "guest" and not p.get("peer_id"):
            top.append((KEEP, f"{labels[role]} · Guest · not joined yet"))
            continue
        top.append((KEEP, f"{labels[role]} · {role.title()}{you} · {short_id(p.get('peer_id'))}"))
        if role == me:
            owner = _owner_lines(view.get("owner"))
            top.append((KEEP, owner[0]))
            top.extend((SPARE_OWNER, line) for line in owner[1:])
        else:
            top.append((KEEP, f"  Owner Context: private to the {role}'s owner (never sent here)"))
        stance = said.get(role, "(nothing said yet)")
        if role in consulting:
            stance = "consulting its owner… · " + stance
        top.append((KEEP, f"  Current Stance: {fit(stance, stance_width)}"))
    top.append((SPARE_FIELDS, _fields_line(view, width)))
    if question:
        opts = f" [{' / '.join(map(safe, question.get('options') or []))}]" if question.get("options") else ""
        asked = f"Your agent asks you: {safe(question.get('question', ''))}{opts}"
        top.extend((KEEP, line) for line in wrap(asked, width - 1 if width else None, max_lines=4))
        top.append((KEEP, f"  answer: clawroom answer --room {room_id} --approve|--reject [TEXT]"))
    top.extend((KEEP, line) for note in notes for line in wrap(note, width - 1 if width else None))
    top.append((SPARE_BLANK, ""))
    top.append((KEEP, f"Room Transcript · {len(rows)} events"))
    bottom = [(SPARE_FOOTER, footer)] if footer else []
    if height is None:
        tail_rows = PLAIN_TAIL
    else:
        want = min(MIN_TAIL, len(rows))
        for level in (SPARE_BLANK, SPARE_FOOTER, SPARE_OWNER, SPARE_GOAL, SPARE_FIELDS):
            if len(top) + len(bottom) + want <= height:
                break
            top = [t for t in top if t[0] != level]
            bottom = [b for b in bottom if b[0] != level]
        tail_rows = max(height - len(top) - len(bottom), 0)
    tail = rows[-tail_rows:] if tail_rows else []
    who_w = max((width_of(row.entry.who) for row in tail), default=6)
    lines = [text for _, text in top]
    for row in tail:
        e = row.entry
        lines.append(f"{ago(now_ms - e.ts):>8}  {e.who}{' ' * (who_w - width_of(e.who))}  {_said(e)}")
    lines.extend(text for _, text in bottom)
    if height is not None:
        lines = lines[:height]
    return [fit(line, width - 1) for line in lines] if width else lines
