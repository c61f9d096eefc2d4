"""The one transition table: (author role, room phase, event kind) -> next phase.

Used for our own sends and for the peer's alike. Guards that depend on more than these three keys
(whose turn it is, limits, proposals) live in `rules.py`; SPEC.md's table is generated from this one.
"""

from __future__ import annotations

from typing import Literal

from .events import KINDS, ROLES, Role

Phase = Literal["new", "invited", "active", "delivering", "closing", "closed"]
PHASES: tuple[Phase, ...] = ("new", "invited", "active", "delivering", "closing", "closed")

PHASE_MEANING: dict[Phase, str] = {
    "new": "nothing appended yet",
    "invited": "room created, join URL issued, no guest yet",
    "active": "both sides present, exchanging turns",
    "delivering": "a close has been proposed; waiting for the other side to countersign or decline",
    "closing": "the room must end; the host appends room_closed next",
    "closed": "room_closed appended; nothing more is accepted",
}

TRANSITIONS: dict[tuple[Role, Phase, str], Phase] = {}


def _allow(roles: tuple[Role, ...], phases: tuple[Phase, ...], kind: str, to: Phase | None = None) -> None:
    assert kind in KINDS
    for role in roles:
        for phase in phases:
            TRANSITIONS[(role, phase, kind)] = to or phase


_BOTH = ROLES
_allow(("host",), ("new",), "room_created", "invited")
_allow(("guest",), ("invited",), "joined", "active")
_allow(_BOTH, ("active",), "message")
_allow(_BOTH, ("delivering",), "message", "active")  # a further message declines the pending close
_allow(_BOTH, ("active", "delivering"), "consult_started")
_allow(_BOTH, ("active", "delivering"), "consult_ended")
_allow(_BOTH, ("active",), "close_proposed", "delivering")
_allow(_BOTH, ("delivering",), "close_accepted", "closing")
_allow(("host",), ("invited", "active", "delivering"), "error", "closing")
_allow(("guest",), ("active", "delivering"), "error", "closing")
_allow(("host",), ("invited", "active", "delivering", "closing"), "room_closed", "closed")


def next_phase(role: Role, phase: Phase, kind: str) -> Phase | None:
    return TRANSITIONS.get((role, phase, kind))


def render_markdown() -> str:
    """The transition table as Markdown, for SPEC.md (kept in sync by scripts/gen_spec.py)."""
    lines = ["| author | phase | event kind | next phase |", "| --- | --- | --- | --- |"]
    for (role, phase, kind), to in sorted(
        TRANSITIONS.items(), key=lambda kv: (PHASES.index(kv[0][1]), KINDS.index(kv[0][2]), kv[0][0])
    ):
        lines.append(f"| {role} | {phase} | {kind} | {to} |")
    lines.append("")
    lines.append("| phase | meaning |")
    lines.append("| --- | --- |")
    lines.extend(f"| {p} | {PHASE_MEANING[p]} |" for p in PHASES)
    return "\n".join(lines) + "\n"
