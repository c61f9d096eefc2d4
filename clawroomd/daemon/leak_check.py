"""The leak guard at the last step before our daemon signs anything (issue 9, DESIGN §5): every string of
an event of ours that the peer will see is checked against this owner's private facts for the room.

A hit is refused with `leak_blocked`, naming the private fact to the local caller (it is the owner's own
agent); the peer learns nothing, since nothing is signed, stored or sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..core.events import Body
from ..owner.guard import LeakGuard
from .errors import ApiError

GUARDS_KEPT = 256  # compiled guards cached by their facts (one per room's fact list in practice)


def peer_visible_strings(value: Any) -> Iterator[str]:
    """Every text in an event body, walked by its fields, so a new event kind cannot slip past unread."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from peer_visible_strings(getattr(value, f.name))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from peer_visible_strings(k)
            yield from peer_visible_strings(v)
    elif isinstance(value, list | tuple | frozenset | set):
        for v in value:
            yield from peer_visible_strings(v)


class LeakCheck:
    """`private_facts(room_id)` gives the room's facts (and raises ApiError if they cannot be read)."""

    def __init__(self, private_facts: Callable[[str], list[str]]) -> None:
        self.private_facts = private_facts
        self._guards: dict[tuple[str, ...], LeakGuard] = {}

    def room(self, room_id: str, body: Body | str) -> None:
        self.facts(self.private_facts(room_id), body)

    def facts(self, facts: Sequence[str], body: Body | str) -> None:
        if not facts:
            return
        key = tuple(facts)
        guard = self._guards.get(key)
        if guard is None:
            if len(self._guards) >= GUARDS_KEPT:
                self._guards.clear()
            guard = self._guards[key] = LeakGuard(key)
        strings = list(peer_visible_strings(body))
        hit = guard.check_strings(strings)
        if hit is not None:
            raise ApiError(
                "leak_blocked",
                f"not sent: {hit.matched!r} gives away your private fact #{hit.fact_index + 1} ({hit.fact!r}); "
                "nothing was signed, stored or sent. Say it without that fact.",
                {"fact_index": hit.fact_index, "kind": hit.kind, "matched": hit.matched},
            )
