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
    rows = [
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
        ("guest label", events.MAX_LABEL, "characters"),
    ]
    from clawroomd.core.envelope import MAX_EVENT_BYTES

    rows.append(("signed event (COSE_Sign1 bytes)", MAX_EVENT_BYTES, "bytes"))
    out = ["| what | at most | unit |", "| --- | --- | --- |"]
    out += [f"| {what} | {n:,} | {unit} |" for what, n, unit in rows]
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
