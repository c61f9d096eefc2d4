#!/usr/bin/env python3
"""Regenerate the tables in protocol/SPEC.md from the code; `--check` exits 1 if SPEC.md is stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from clawroomd.core import events
from clawroomd.core.errors import ROOM_ERROR_CODES
from clawroomd.core.table import render_markdown

SPEC = Path(__file__).resolve().parents[1] / "protocol" / "SPEC.md"


def limits() -> str:
    from clawroomd.core.envelope import MAX_EVENT_BYTES
    from clawroomd.core.rules import max_events

    most = max_events(events.MAX_TURNS)
    per_room = f"{events.EVENTS_PER_TURN} \N{MULTIPLICATION SIGN} max_turns + {events.EVENTS_BASE} ({most:,} at most)"
    rows: list[tuple[str, int | str, str]] = [
        ("topic", events.MAX_TOPIC, "characters"),
        ("goal", events.MAX_GOAL, "characters"),
        ("required fields per room", events.MAX_FIELDS, "fields"),
        ("field description", events.MAX_DESCRIPTION, "characters"),
        ("max_turns", events.MAX_TURNS, "messages"),
        ("message text", events.MAX_TEXT, "characters"),
        ("moves per message", events.MAX_MOVES, "moves"),
        ("proposed / agreed value", events.MAX_VALUE, "characters"),
        ("refs per move", events.MAX_REFS, "refs"),
        ("one ref", events.MAX_REF, "characters"),
        ("close reason, error message", events.MAX_REASON, "characters"),
        ("label (host's or guest's)", events.MAX_LABEL, "characters"),
        ("signed event (COSE_Sign1 bytes)", MAX_EVENT_BYTES, "bytes"),
        ("consultations started per side per turn", events.MAX_CONSULTS_PER_TURN, "consult_started events"),
        ("events per room", per_room, "events"),
        ("clock skew: `ts` ahead of the receiver's clock or before the previous `ts`", events.MAX_CLOCK_SKEW_MS, "ms"),
    ]
    out = ["| what | at most | unit |", "| --- | --- | --- |"]
    out += [f"| {what} | {n if isinstance(n, str) else f'{n:,}'} | {unit} |" for what, n, unit in rows]
    return "\n".join(out) + "\n"


def error_codes() -> str:
    out = ["| code | meaning |", "| --- | --- |"]
    out += [f"| `{code}` | {meaning} |" for code, meaning in ROOM_ERROR_CODES.items()]
    return "\n".join(out) + "\n"


GENERATORS = {"transitions": render_markdown, "limits": limits, "room-error-codes": error_codes}


def render(text: str) -> str:
    for name, gen in GENERATORS.items():
        pattern = re.compile(rf"(<!-- BEGIN GENERATED {name} -->\n).*?(<!-- END GENERATED {name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"SPEC.md lacks the markers for the generated block {name!r}")
        text = pattern.sub(lambda m, gen=gen: m.group(1) + gen() + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = SPEC.read_text()
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print("protocol/SPEC.md is stale: run python scripts/gen_spec.py", file=sys.stderr)
            return 1
        return 0
    SPEC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
