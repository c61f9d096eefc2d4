"""An open room in memory: its core object, the lock that serialises local moves, and change signals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from ..core.envelope import SignedEvent
from ..core.events import Role
from ..core.room import GuestRoom, HostRoom
from ..core.rules import RoomState
from .owner_context import OwnerContext


@dataclass
class Ack:
    """How the host answered one of our (guest) submissions."""

    event: SignedEvent | None = None
    code: str = ""
    message: str = ""
    done: trio.Event = field(default_factory=trio.Event)


class LiveRoom:
    def __init__(
        self, *, room_id: str, role: Role, core: HostRoom | GuestRoom, meta: dict[str, Any], peer_key: bytes | None
    ) -> None:
        self.room_id = room_id
        self.role = role
        self.core = core
        self.meta = meta
        self.peer_key = peer_key
        self.lock = trio.Lock()  # one local move at a time: guests sign against the head they hold
        self.acks: dict[str, Ack] = {}
        self.local_result: dict[str, Any] | None = None  # guest-side verdict when the host is gone for good
        self.link_up = False
        self.stored_phase = ""  # the phase last written to the rooms table
        self.owner_context: OwnerContext | None = None  # our owner's, from owner_context.json (context_store)
        self._changed = trio.Event()
        self._ended = trio.Event()
        self._end_waiters: set[trio.Event] = set()  # also set when the room ends (wait_closed_or)

    @property
    def host(self) -> HostRoom:
        """The core of a room we host (the role is fixed for a room's life)."""
        assert isinstance(self.core, HostRoom), "not a host room"
        return self.core

    @property
    def guest(self) -> GuestRoom:
        assert isinstance(self.core, GuestRoom), "not a guest room"
        return self.core

    @property
    def state(self) -> RoomState:
        return self.core.state

    @property
    def closed(self) -> bool:
        return self.state.phase == "closed" or self.local_result is not None

    @property
    def changed(self) -> trio.Event:
        """Set at the next change; capture it *before* reading state so no change is missed."""
        return self._changed

    def bump(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        if self.closed:
            self._ended.set()
            for waiter in self._end_waiters:
                waiter.set()

    async def wait_closed(self) -> None:
        """Until the room has ended (checked at each `bump`, which follows every change). For tasks that
        care about nothing else: waiting on `changed` would wake them at every event of the room."""
        if not self.closed:
            await self._ended.wait()

    async def wait_closed_or(self, event: trio.Event) -> None:
        """Until the room has ended or `event` is set, whichever comes first (no task of its own: the
        end sets `event` too)."""
        if self.closed or event.is_set():
            return
        self._end_waiters.add(event)
        try:
            await event.wait()
        finally:
            self._end_waiters.discard(event)

    def awaiting(self) -> frozenset[Role]:
        """Who is expected to act now (`RoomState.awaiting`); nobody once we ended the room locally."""
        return frozenset() if self.local_result is not None else self.state.awaiting

    @property
    def our_turn(self) -> bool:
        return self.local_result is None and self.state.your_turn(self.role)
