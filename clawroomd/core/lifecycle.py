"""The participant lifecycle shown to owners (DESIGN §1), derived from the room state (SPEC §6).

`invited → joining → active → delivering → closed`, or `error`. Pure: the daemon adds only what the
transcript cannot say, that its side ended the room locally (the host gone past its grace period).
"""

from __future__ import annotations

from typing import Literal

from .events import Role
from .rules import RoomState

Lifecycle = Literal["invited", "joining", "active", "delivering", "closed", "error"]
LIFECYCLES: tuple[Lifecycle, ...] = ("invited", "joining", "active", "delivering", "closed", "error")
ERROR_STATUSES = ("error", "timeout")  # result statuses an owner is shown as `error`


def lifecycle(state: RoomState, role: Role, *, ended_locally: bool = False) -> Lifecycle:
    """Where `role`'s owner stands in the room. `ended_locally`: this side gave the room up on its own
    (a guest whose host stayed unreachable past the grace period, SPEC §14), which shows as `error`."""
    if ended_locally:
        return "error"
    match state.phase:
        case "closed":
            assert state.result is not None
            return "error" if state.result.outcome.status in ERROR_STATUSES else "closed"
        case "new" | "invited":
            # The guest holds no event before its `joined` comes back: it is joining. The host has issued
            # the invite and waits for a guest.
            return "joining" if role == "guest" else "invited"
        case "delivering" | "closing":
            return "delivering"
        case "active":
            return "active"
