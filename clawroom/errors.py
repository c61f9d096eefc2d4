"""The library's exceptions: one class per common daemon error code (SPEC §15.5), all ClawroomError.

Branch on ``.code`` (the daemon's stable string) or on the class; ``.message`` is for a person, ``.data``
holds the error's extra fields (e.g. ``expect_seq`` and ``seq`` for stale_state).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from clawroomd import client


class ClawroomError(Exception):
    """An error from the daemon (``code`` as in SPEC §15.5) or from reaching it."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class NotYourTurn(ClawroomError):
    code = "not_your_turn"


class RoomClosed(ClawroomError):
    code = "room_closed"


class UnknownRoom(ClawroomError):
    code = "unknown_room"


class StaleState(ClawroomError):
    """The room moved on from the seq the move was bound to: re-read (``room.status()``) and decide again."""

    code = "stale_state"


class LeakBlocked(ClawroomError):
    code = "leak_blocked"


class NeedsOwnerApproval(ClawroomError):
    code = "needs_owner_approval"


class PendingQuestion(ClawroomError):
    code = "pending_question"


class NotReady(ClawroomError):
    code = "not_ready"


class BadValue(ClawroomError):
    code = "bad_value"


class ConnectionLost(ClawroomError):
    code = "connection_lost"


class DaemonNotRunning(ClawroomError):
    """No clawroomd listens on the socket (or it is too busy to accept)."""

    code = "daemon_not_running"


ERRORS: dict[str, type[ClawroomError]] = {
    cls.code: cls
    for cls in (NotYourTurn, RoomClosed, UnknownRoom, StaleState, LeakBlocked, NeedsOwnerApproval,
                PendingQuestion, NotReady, BadValue)
}


def from_api_error(err: client.ApiError) -> ClawroomError:
    """The library's exception for a daemon's error answer; codes without a class stay ClawroomError."""
    cls = ERRORS.get(err.code, ClawroomError)
    return cls(err.message, code=err.code, data=err.data)


def not_running(err: client.DaemonNotRunning) -> DaemonNotRunning:
    if isinstance(err, client.DaemonBusy):
        return DaemonNotRunning(str(err), code="daemon_busy")
    what = str(err).split("; start it with", 1)[0]
    return DaemonNotRunning(
        f"{what}. Start a daemon in the background with `clawroomd &` (or run `clawroom demo` to see two "
        "daemons negotiate a room), or point CLAWROOM_SOCKET / clawroom.connect(socket=...) at a running one."
    )


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise the client layer's errors as the library's."""
    try:
        yield
    except client.ApiError as err:
        raise from_api_error(err) from err
    except client.DaemonNotRunning as err:
        raise not_running(err) from err
    except client.ConnectionLost as err:
        raise ConnectionLost(str(err)) from err
