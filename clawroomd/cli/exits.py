"""How the CLI ends: exit codes, the exceptions commands raise, and the one mapping from an exception
to a message and an exit code (`describe_error`).

Exit codes:

====  ===========================================================================================
0     ok (``watch`` and ``status --watch``: the room closed; ``demo``: agreement reached)
1     any other error (including a daemon error without a code of its own)
2     usage: bad command line, or the daemon refused the parameters (invalid_params, bad_value,
      unknown_field, limit_exceeded)
3     the daemon is not running (nothing answers on the socket) or it closed the connection
4     not_your_turn: it is the other side's turn
5     room_closed: the room has ended; nothing more can be sent
6     unknown_room: no such room on this daemon
7     the peer is unreachable, or the call timed out (peer_unreachable, too_slow, client timeout)
8     the join failed: bad join URL (bad_join_url), the host refused the invite (invite_rejected), or
      the host's owner denied a LAN join request or let it expire (join_refused)
9     stale_state: the room moved on from the state the move was based on; nothing was sent
130   interrupted (Ctrl-C)
====  ===========================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_NOT_YOUR_TURN = 4
EXIT_ROOM_CLOSED = 5
EXIT_UNKNOWN_ROOM = 6
EXIT_UNREACHABLE = 7
EXIT_JOIN_FAILED = 8
EXIT_STALE = 9
EXIT_INTERRUPTED = 130

# The daemon's stable error codes (clawroomd/daemon/errors.py) that have an exit code of their own.
API_EXIT_CODES: dict[str, int] = {
    "invalid_params": EXIT_USAGE,
    "bad_value": EXIT_USAGE,
    "unknown_field": EXIT_USAGE,
    "limit_exceeded": EXIT_USAGE,
    "not_your_turn": EXIT_NOT_YOUR_TURN,
    "room_closed": EXIT_ROOM_CLOSED,
    "unknown_room": EXIT_UNKNOWN_ROOM,
    "peer_unreachable": EXIT_UNREACHABLE,
    "too_slow": EXIT_UNREACHABLE,
    "bad_join_url": EXIT_JOIN_FAILED,
    "invite_rejected": EXIT_JOIN_FAILED,
    "join_refused": EXIT_JOIN_FAILED,
    "stale_state": EXIT_STALE,
}

EPILOG = """\
exit codes:
  0  ok (watch: the room closed; demo: agreement reached)
  1  other error
  2  usage error, or the daemon refused the parameters
  3  the daemon is not running (start it with `clawroomd`)
  4  not your turn
  5  the room is closed
  6  unknown room
  7  peer unreachable, or timed out
  8  bad join URL, or the host refused the invite or the LAN join request
  9  the room moved on since the state the move was based on (nothing sent)
130  interrupted

The socket is --socket PATH, else $CLAWROOM_SOCKET, else the daemon's default
($XDG_RUNTIME_DIR/clawroom/clawroomd.sock).
"""


class UsageError(Exception):
    """A bad command line found after parsing (exit 2)."""


class CommandFailed(Exception):
    """A command that could not do its job; the message says why (exit 1)."""


class JoinURLError(Exception):
    """Something that cannot be a join URL, caught before asking the daemon (exit 8)."""


def describe_error(exc: BaseException) -> tuple[str, int, str]:
    """The one mapping from an exception to (message for a person, exit code, stable code string)."""
    from clawroomd.client import ApiError, ConnectionLost, DaemonNotRunning

    match exc:
        case ApiError():
            return exc.message or exc.code, API_EXIT_CODES.get(exc.code, EXIT_ERROR), exc.code
        case DaemonNotRunning():
            return str(exc), EXIT_NOT_RUNNING, "daemon_not_running"
        case ConnectionLost():
            return f"lost the connection to clawroomd: {exc}", EXIT_NOT_RUNNING, "connection_lost"
        case UsageError():
            return str(exc), EXIT_USAGE, "usage"
        case CommandFailed():
            return str(exc), EXIT_ERROR, "failed"
        case JoinURLError():
            return str(exc), EXIT_JOIN_FAILED, "bad_join_url"
        case TimeoutError():
            return str(exc) or "timed out", EXIT_UNREACHABLE, "timeout"
        case KeyboardInterrupt():
            return "interrupted", EXIT_INTERRUPTED, "interrupted"
        case PermissionError():
            return f"permission denied: {exc.filename or exc}", EXIT_ERROR, "permission_denied"
        case OSError():
            return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), EXIT_ERROR, "os_error"
    return f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR, "internal"
