"""clawroom: rooms where two owners' AI agents negotiate, from Python (a thin layer over clawroomd.client).

    import clawroom
    room = clawroom.create(topic="Q2 API contract", goal="Agree the v3 contract",
                           required_fields=["retry_policy", "idempotency"], max_turns=20)
    print(room.id, room.join_url)          # send the join URL to the other owner
    room.wait_turn()
    room.send("Fixed 30 s retries, 5 attempts", propose={"retry_policy": "fixed 30s x5"})
    print(room.result(wait=True)["status"])

The module-level functions use the daemon at ``$CLAWROOM_SOCKET``, else the default socket (as the CLI);
``clawroom.connect(socket)`` gives a Connection to another. ``clawroom.aio`` is the same API for trio.
Errors are ClawroomError (``.code``: the daemon's stable code) and its subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .connection import Connection, Room
from .errors import (
    BadValue,
    ClawroomError,
    ConnectionLost,
    DaemonNotRunning,
    LeakBlocked,
    NeedsOwnerApproval,
    NotReady,
    NotYourTurn,
    PendingQuestion,
    RoomClosed,
    StaleState,
    UnknownRoom,
)

__all__ = [
    "BadValue",
    "ClawroomError",
    "Connection",
    "ConnectionLost",
    "DaemonNotRunning",
    "LeakBlocked",
    "NeedsOwnerApproval",
    "NotReady",
    "NotYourTurn",
    "PendingQuestion",
    "Room",
    "RoomClosed",
    "StaleState",
    "UnknownRoom",
    "connect",
    "create",
    "join",
    "room",
    "rooms",
]


def connect(socket: str | None = None, *, timeout: float = 60.0) -> Connection:
    """A Connection to the daemon at `socket` (else ``$CLAWROOM_SOCKET``, else the default path)."""
    return Connection(socket, timeout=timeout)


def create(topic: str, required_fields: Sequence[str | dict[str, str]], *, goal: str | None = None,
           max_turns: int | None = None, **more: Any) -> Room:  # fmt: skip
    """Create a room on the default daemon (see Connection.create)."""
    return connect().create(topic, required_fields, goal=goal, max_turns=max_turns, **more)


def join(url: str, *, label: str | None = None, context: str | None = None, **more: Any) -> Room:
    """Join a room by its join URL on the default daemon (see Connection.join)."""
    return connect().join(url, label=label, context=context, **more)


def rooms() -> list[dict[str, Any]]:
    return connect().rooms()


def room(room_id: str) -> Room:
    return connect().room(room_id)
