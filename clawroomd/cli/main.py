"""``clawroom``: the command-line client of the local clawroomd daemon.

The command line is parsed into a `Config`; each command is a function of that config (in
`clawroomd.cli.commands`, imported only when a command runs); `describe_error` is the one place that
turns an exception into a message and an exit code. Commands talk to the daemon with the small
synchronous client (no trio, no cryptography), so the CLI starts fast.

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
8     the join failed: bad join URL (bad_join_url) or the host refused the invite (invite_rejected)
130   interrupted (Ctrl-C)
====  ===========================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_NOT_YOUR_TURN = 4
EXIT_ROOM_CLOSED = 5
EXIT_UNKNOWN_ROOM = 6
EXIT_UNREACHABLE = 7
EXIT_JOIN_FAILED = 8
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
  8  bad join URL, or the host refused the invite
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


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything a command needs, parsed from the command line and the environment."""

    command: str
    socket: str | None = None
    json: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:  # cfg.topic etc.: the command's own options
        try:
            return self.options[name]
        except KeyError:
            raise AttributeError(name) from None


# ---------------------------------------------------------------------------------------------- parser
def _globals_parent() -> argparse.ArgumentParser:
    """--socket and --json, accepted before or after the command (SUPPRESS keeps a subcommand from
    overwriting a value given before it)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--socket",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="daemon socket (default: $CLAWROOM_SOCKET, else the daemon's default)",
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine output: the raw JSON result")
    return p


def build_parser() -> argparse.ArgumentParser:
    parent = _globals_parent()
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="clawroom",
        description="Client of the local clawroomd daemon: create and join rooms, send moves, watch, read results.",
        epilog=EPILOG,
        formatter_class=fmt,
        parents=[parent],
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=fmt, parents=[parent]
        )

    c = cmd("create", "Create a room on this daemon (you are the host) and print its join URL.")
    c.add_argument("--topic", required=True, help="what the room is about")
    c.add_argument("--goal", default="", help="what both sides should reach")
    c.add_argument(
        "--field", dest="fields", action="append", required=True, metavar="NAME[=DESCRIPTION]",
        help="a required outcome field (repeat for each; lowercase letters, digits and _)",
    )  # fmt: skip
    c.add_argument("--max-turns", type=int, default=20, metavar="N", help="messages allowed in total (default 20)")
    c.add_argument("--first", choices=("host", "guest"), default="host", help="who sends the first message")
    c.add_argument("--turn-timeout", metavar="DUR", help="per-turn deadline, e.g. 30s, 10m, 2h (default 1h)")
    c.add_argument("--deadline", metavar="DUR", help="deadline for the whole room, e.g. 2h, 3d (default 1d)")
    c.add_argument("--invite-ttl", metavar="DUR", help="how long the join URL stays valid")
    c.add_argument(
        "--advertise", action="append", metavar="HOST:PORT",
        help="address the guest dials (repeatable; default: the daemon's own setting or listen address)",
    )  # fmt: skip
    c.add_argument("--label", default="", metavar="NAME", help="your display name in the room (e.g. stripe-agent)")
    c.add_argument("--agent", metavar="CMD", help="agent command the daemon runs on each of your turns")
    c.add_argument("--agents", type=int, help=argparse.SUPPRESS)  # the seed page's `--agents 2`: always two

    j = cmd("join", "Join a room as the guest with the join URL the host sent you.")
    j.add_argument("url", nargs="?", metavar="URL", help="the join URL (clawroom://join/...)")
    j.add_argument("--join-url", dest="join_url", metavar="URL", help="the join URL, as an option")
    j.add_argument("--label", default="", metavar="NAME", help="your display name in the room")
    j.add_argument("--agent", metavar="CMD", help="agent command the daemon runs on each of your turns")
    j.add_argument("--role", choices=("guest", "host"), default="guest", help="always guest (the host creates)")
    j.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="give up after this long (default 30)"
    )
    j.add_argument("--room", help=argparse.SUPPRESS)

    s = cmd("send", "Send one message (your turn): text and moves on the room's fields.")
    s.add_argument("--room", required=True, metavar="ID", help="room id")
    s.add_argument("--text", default="", metavar="T", help="message text")
    s.add_argument("--propose", action="append", default=[], metavar="FIELD=VALUE", help="propose a value (repeatable)")
    s.add_argument(
        "--accept",
        action="append",
        default=[],
        metavar="FIELD",
        help="accept the peer's standing proposal (repeatable)",
    )
    s.add_argument(
        "--reject",
        action="append",
        default=[],
        metavar="FIELD",
        help="reject the peer's standing proposal (repeatable)",
    )
    s.add_argument("--sid", metavar="ID", help="submit id: retrying with the same id never sends twice")

    st = cmd("status", "Show the room's status card.")
    st.add_argument("--room", required=True, metavar="ID", help="room id")
    st.add_argument("--watch", action="store_true", help="redraw on every change until the room closes")

    w = cmd("watch", "Print the transcript live until the room closes.")
    w.add_argument("--room", required=True, metavar="ID", help="room id")
    w.add_argument("--from", dest="from_seq", type=int, default=0, metavar="SEQ", help="start at this event number")

    cmd("list", "List the rooms on this daemon.")
    cl = cmd("close", "Propose closing with the current outcome, or countersign the peer's close.")
    cl.add_argument("--room", required=True, metavar="ID", help="room id")
    ca = cmd("cancel", "End the room now with result `cancelled`.")
    ca.add_argument("--room", required=True, metavar="ID", help="room id")
    ca.add_argument("--reason", default="", metavar="R", help="why (shown to the peer)")
    r = cmd("result", "Show the result of a closed room.")
    r.add_argument("--room", required=True, metavar="ID", help="room id")
    cmd("info", "Show the daemon's peer id, version, addresses and folders.")
    t = cmd("transcript", "Print the room's transcript so far.")
    t.add_argument("--room", required=True, metavar="ID", help="room id")

    d = cmd("demo", "Run two real daemons on this machine and let two scripted agents negotiate a room.")
    d.add_argument("--keep", action="store_true", help="keep the temporary state folders and print where they are")
    return p


def parse(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """The command line as a Config. argparse exits 2 on a bad command line (and 0 for --help)."""
    env = dict(os.environ) if env is None else env
    ns = vars(build_parser().parse_args(argv))
    command = ns.pop("command")
    sock = ns.pop("socket", None) or env.get("CLAWROOM_SOCKET") or None
    as_json = bool(ns.pop("json", False))
    return Config(command=command, socket=sock, json=as_json, options=ns)


# ------------------------------------------------------------------------------------ errors -> exits
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


def run(cfg: Config) -> int:
    """Run one command; every failure becomes a message on stderr (or JSON on stdout) and an exit code."""
    try:
        from . import commands

        code: int = getattr(commands, "cmd_" + cfg.command)(cfg)
        return code
    except BrokenPipeError:  # `clawroom watch ... | head`: the reader left
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lets the interpreter's final flush succeed
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:
        message, code, name = describe_error(exc)
        if os.environ.get("CLAWROOM_DEBUG") and name == "internal":
            raise
        if cfg.json:
            import json

            print(json.dumps({"error": name, "message": message, "exit_code": code}), flush=True)
        else:
            from .render import safe  # the message may quote the peer (a refusal's reason)

            print(f"clawroom: {safe(message)}", file=sys.stderr, flush=True)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse(argv))


if __name__ == "__main__":  # python -m clawroomd.cli.main: run the importable module, so that the
    from clawroomd.cli.main import main as _main  # exception classes the commands raise are these ones

    sys.exit(_main())
