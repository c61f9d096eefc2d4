"""The `clawroom` command line: the argparse tree and `parse`, which turns argv and the environment into a
`Config`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from .exits import EPILOG
from .lan import add_lan_commands
from .llm_agent import add_llm_options
from .options import Config
from .preflight import PREFLIGHT_HELP, add_preflight
from .stats import STATS_HELP


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


_EXPECT_SEQ: dict[str, Any] = {
    "dest": "expect_seq",
    "type": int,
    "metavar": "SEQ",
    "help": "bind the move to the room as of event SEQ (the `seq` of `status --json` or of room.your_turn); "
    "refused with exit 9 if the room has moved on (default: the room as it is when the command starts)",
}


_NOTIFY_HELP = "command run with each question your agent asks you (the question as JSON on stdin)"
_DELIVER_HELP = (
    "deliver the result to you on close: CMD runs with summary.md on stdin and CLAWROOM_RESULT=final_result.json "
    "in its environment, retried (5 attempts) until it exits 0 (default: the daemon's `deliver` setting)"
)
_CONTEXT_HELP = (
    "copy this owner-context profile into the room (default: the profile `default`, if you wrote one); "
    "see `clawroom context write --help`"
)


def _context_commands(
    ctx: argparse.ArgumentParser, parent: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]
) -> None:
    sub = ctx.add_subparsers(dest="context_action", metavar="ACTION")
    sub.required = True
    w = sub.add_parser(
        "write",
        parents=[parent],
        formatter_class=fmt,
        help="write a profile (default `default`) or a room's context",
        description="Write your owner context: a reusable profile (copied into each room you create or join),\n"
        "or one room's own copy (--room). Only the options you give change, and each list option given replaces\n"
        "that whole list (repeat it for several entries); --replace starts from nothing. The context stays on\n"
        "this machine (0600 files in the state dir): the peer sees none of it unless your agent says it.",
        epilog=EPILOG,
    )
    w.add_argument("--owner-name", metavar="NAME", help="your name, e.g. alice (required for a new context)")
    w.add_argument("--role", dest="owner_role", metavar="ROLE", help="your role, e.g. 'Payment infrastructure lead'")
    w.add_argument("--task-context", metavar="TEXT", help="what the negotiation is for, in your words")
    w.add_argument("--goal", dest="goals", action="append", metavar="TEXT", help="a goal (repeatable)")
    w.add_argument(
        "--constraint", dest="constraints", action="append", metavar="TEXT", help="a constraint (repeatable)"
    )
    w.add_argument("--priority", dest="priorities", action="append", metavar="TEXT", help="a priority (repeatable)")
    w.add_argument(
        "--confirmed-fact", dest="confirmed_facts", action="append", metavar="TEXT",
        help="a fact your agent may say (repeatable); each gets an id (f1, f2, ...) a move can cite as fact:f1",
    )  # fmt: skip
    w.add_argument(
        "--private-fact", dest="private_facts", action="append", metavar="TEXT",
        help="a fact that must never leave this machine, e.g. 'our ceiling is 48,500' (repeatable)",
    )  # fmt: skip
    w.add_argument(
        "--limit", dest="limits", action="append", metavar="FIELD<=VALUE",
        help="what your agent may agree without asking you, e.g. 'price<=52000' or 'start>=2026-06-01' (repeatable)",
    )  # fmt: skip
    w.add_argument("--language", metavar="TAG", help="the language to negotiate in, e.g. en, de, pt-BR")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--profile", metavar="NAME", help="the profile to write (default: default)")
    where.add_argument("--room", metavar="ID", help="write this room's own copy instead of a profile")
    w.add_argument(
        "--from-file", metavar="F.json",
        help="start from this JSON context (the output of `context show --json` will do); options given override it",
    )  # fmt: skip
    w.add_argument(
        "--replace", action="store_true", help="replace the whole context instead of changing the fields given"
    )
    s = sub.add_parser(
        "show",
        parents=[parent],
        formatter_class=fmt,
        help="show a profile (default `default`) or a room's context",
        description="Show your owner context, private facts included (marked private: they are for you and your "
        "agent only).",
        epilog=EPILOG,
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument("--profile", metavar="NAME", help="the profile to show (default: default)")
    where.add_argument("--room", metavar="ID", help="show this room's copy")


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
        "--field", dest="fields", action="append", metavar="NAME[=DESCRIPTION]",
        help="a required outcome field (repeat for each; lowercase letters, digits and _; "
        "none given: one field `outcome`)",
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
    add_llm_options(c)
    c.add_argument(
        "--agents", type=int, metavar="2", help="agents in the room: always 2 (yours and the guest's); no other value"
    )
    c.add_argument("--lan-join", action="store_true", help="let a LAN guest ask to join by room id (you approve)")
    c.add_argument("--context", metavar="PROFILE", help=_CONTEXT_HELP)
    c.add_argument("--notify", metavar="CMD", help=_NOTIFY_HELP)
    c.add_argument("--deliver", metavar="CMD", help=_DELIVER_HELP)

    j = cmd("join", "Join a room as the guest: with the join URL the host sent you, or on the LAN by --room ID.")
    j.add_argument("url", nargs="?", metavar="URL", help="the join URL (clawroom://join/...)")
    j.add_argument("--join-url", dest="join_url", metavar="URL", help="the join URL, as an option")
    j.add_argument("--label", default="", metavar="NAME", help="your display name in the room")
    j.add_argument("--agent", metavar="CMD", help="agent command the daemon runs on each of your turns")
    add_llm_options(j)
    j.add_argument("--role", choices=("guest", "host"), default="guest", help="always guest (the host creates)")
    j.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="give up after this long (default 30; by --room 600)"
    )
    j.add_argument("--room", metavar="ID", help="no URL: ask the host on the LAN for this room; its owner approves")
    j.add_argument("--peer", metavar="PEER", help="with --room: ask this LAN peer (id or name) only")
    j.add_argument("--context", metavar="PROFILE", help=_CONTEXT_HELP)
    j.add_argument("--notify", metavar="CMD", help=_NOTIFY_HELP)
    j.add_argument("--deliver", metavar="CMD", help=_DELIVER_HELP)

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
    s.add_argument("--expect-seq", **_EXPECT_SEQ)

    st = cmd("status", "Show the room's status card.")
    st.add_argument("--room", required=True, metavar="ID", help="room id")
    st.add_argument(
        "--watch", action="store_true",
        help="the live card until the room closes: redrawn in place on a terminal (Ctrl-C: exit 130), "
        "one plain card per change otherwise",
    )  # fmt: skip

    w = cmd("watch", "Print the transcript live until the room closes.")
    w.add_argument("--room", required=True, metavar="ID", help="room id")
    w.add_argument("--from", dest="from_seq", type=int, default=0, metavar="SEQ", help="start at this event number")

    cmd("list", "List the rooms on this daemon.")
    cl = cmd("close", "Propose closing with the current outcome, or countersign the peer's close.")
    cl.add_argument("--room", required=True, metavar="ID", help="room id")
    cl.add_argument("--expect-seq", **_EXPECT_SEQ)
    ca = cmd("cancel", "End the room now with result `cancelled`.")
    ca.add_argument("--room", required=True, metavar="ID", help="room id")
    ca.add_argument("--reason", default="", metavar="R", help="why (shown to the peer)")
    r = cmd("result", "Show the result of a closed room.")
    r.add_argument("--room", required=True, metavar="ID", help="room id")
    r.add_argument("--wait", action="store_true", help="block until the room is closed and its result written")
    r.add_argument(
        "--timeout", dest="wait_timeout", type=float, metavar="S", help="with --wait: give up after S seconds"
    )
    cmd("info", "Show the daemon's peer id, version, addresses and folders.")
    t = cmd("transcript", "Print the room's transcript so far.")
    t.add_argument("--room", required=True, metavar="ID", help="room id")

    cmd("inbox", "List the questions your agents asked you that wait for an answer.")
    a = cmd("answer", "Answer your agent's pending question in a room (once).")
    a.add_argument("--room", required=True, metavar="ID", help="room id")
    verdict = a.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true", help="approve what the agent asked")
    verdict.add_argument("--reject", dest="reject_question", action="store_true", help="reject it")
    a.add_argument("answer_text", nargs="?", default="", metavar="TEXT", help="your answer, for the agent")
    v = cmd(
        "verify",
        "Check a final_result.json offline (no daemon): every signature, the hash chain, the outcome digest, "
        "and, with --transcript, that each transcript line is the signed event. Exit 0: ok; 1: names the place.",
    )
    v.add_argument("final_result", metavar="FINAL_RESULT", help="the rooms/<id>/final_result.json to check")
    v.add_argument("--transcript", dest="transcript_file", metavar="TRANSCRIPT", help="its transcript.jsonl")

    add_lan_commands(cmd)
    _context_commands(cmd("context", "Write or show your owner context (kept only on this machine)."), parent, fmt)

    cmd("mcp", "Serve MCP on stdin/stdout so an MCP client (claude mcp add clawroom -- clawroom mcp) sits in rooms.")
    add_preflight(cmd("preflight", PREFLIGHT_HELP))
    cmd("stats", STATS_HELP)

    d = cmd(
        "demo",
        "Run two real daemons on this machine: two owners' contexts, two scripted agents negotiate a room, "
        "one escalation to the host's owner, both summaries, both results verified. Live card on a terminal.",
    )
    d.add_argument("--keep", action="store_true", help="keep the temporary state folders and print where they are")
    return p


def parse(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """The command line as a Config. argparse exits 2 on a bad command line (and 0 for --help)."""
    env = dict(os.environ) if env is None else env
    ns = vars(build_parser().parse_args(argv))
    command = ns.pop("command")
    sock = ns.pop("socket", None) or env.get("CLAWROOM_SOCKET") or None
    as_json = bool(ns.pop("json", False))
    return Config(command=command, socket=sock, json=as_json, **{k: v for k, v in ns.items() if v is not None})
