"""The CLI's LAN commands: `peers`, `approve`, `deny`, and `join --room ID` (a join request by room id).

Registered by parser.py (`add_lan_commands`) and dispatched through commands.py like every command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from clawroomd.client import Client
from clawroomd.core.ids import is_room_id

from . import render
from .exits import EXIT_OK, UsageError
from .options import Config

CALL_TIMEOUT = 60.0
LAN_JOIN_WAIT = 600.0  # s `join --room` waits for the host's owner by default (the daemon allows up to 3600)
FIRST_ANSWER_S = 30.0  # s to find the host and hear `pending`


def add_lan_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    cmd("peers", "List the clawroom daemons found on the LAN and the peers you have met.")
    for name, verb in (("approve", "Admit"), ("deny", "Refuse")):
        a = cmd(
            name,
            f"{verb} a guest who asked to join one of your rooms by its id on the LAN (see `clawroom inbox`). "
            "Compare the 6-digit SAS with the guest's owner first, by voice.",
        )
        a.add_argument("--room", required=True, metavar="ID", help="room id")
        a.add_argument("--peer", metavar="PEER", help="the guest's peer id (or its start, or its LAN name)")


def _out(cfg: Config, result: Any, text: str) -> int:
    print(render.json_line(result) if cfg.json else text, flush=True)
    return EXIT_OK


def _ago(ms: int | None) -> str:
    if not ms:
        return "-"
    s = max(time.time() - ms / 1000, 0)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.0f}h ago"


def cmd_peers(cfg: Config) -> int:
    with Client(cfg.socket, timeout=CALL_TIMEOUT) as c:
        result = c.call("lan.peers")
    lan = result["lan"]
    head = (
        f"LAN discovery: on ({', '.join(lan.get('interfaces', []))}) as {render.safe(lan.get('name'))}"
        if lan.get("enabled")
        else "LAN discovery: off (start clawroomd with --lan)"
    )
    lines = [head + (f"; failed: {render.safe(lan['error'])}" if lan.get("error") else "")]
    for p in result["peers"]:
        lines.append(
            f"{p['peer_id']}  {render.safe(p.get('name') or '-'):<20} {p.get('lan') or 'not on LAN':<7} "
            f"seen {_ago(p['last_seen_ms'])}  {'met' if p['met'] else 'not met'}  {' '.join(p['addrs'])}"
        )
    if not result["peers"]:
        lines.append("No peers known yet.")
    return _out(cfg, result, "\n".join(lines))


def cmd_approve(cfg: Config) -> int:
    return _decide(cfg, "room.approve")


def cmd_deny(cfg: Config) -> int:
    return _decide(cfg, "room.deny")


def _decide(cfg: Config, method: str) -> int:
    params: dict[str, Any] = {"room_id": cfg.room}
    if cfg.peer:
        params["peer"] = cfg.peer
    with Client(cfg.socket, timeout=CALL_TIMEOUT) as c:
        r = c.call(method, **params)
    verb = "Approved" if r["answer"] == "approved" else "Denied"
    return _out(cfg, r, f"{verb} {r['peer_id']} (SAS {r['sas']}) for room {r['room_id']}.")


def inbox_lines(result: dict[str, Any]) -> list[str]:
    """`clawroom inbox`: the join requests waiting for you, and yours waiting at a host."""
    lines = [
        f"{r['room_id']} join request from {r['peer_id']} ({render.safe(r.get('name') or 'no name')}), "
        f"SAS {r['sas']}: clawroom approve|deny --room {r['room_id']} --peer {r['peer_id'][:7]}"
        for r in result.get("join_requests", [])
    ]
    lines += [
        f"{o['room_id']} your join request at {o.get('host_peer_id') or '?'}: {o['state']}, SAS {o.get('sas') or '-'}"
        for o in result.get("outgoing_requests", [])
    ]
    return lines


def join_by_room(cfg: Config, params: dict[str, Any]) -> int:
    """`clawroom join --room ID [--peer P]`: ask the host on the LAN, show the SAS, wait for its owner."""
    room = cfg.room.strip()
    if not is_room_id(room):
        raise UsageError(f"--room {room!r} is not a room id (cr_ and 8-32 lowercase hex digits)")
    params = {**params, "room_id": room, "label": cfg.label}
    if cfg.peer:
        params["peer"] = cfg.peer
    wait = cfg.timeout if cfg.timeout is not None else LAN_JOIN_WAIT
    with Client(cfg.socket, timeout=max(wait, FIRST_ANSWER_S) + 15) as c:
        first = c.call("room.join", **params, wait=False, timeout_s=min(FIRST_ANSWER_S, wait))
        if first.get("state") == "pending":
            host = f"{first['host_peer_id']} ({render.safe(first.get('host_name') or 'no name')})"
            if cfg.json:
                print(render.json_line(first), flush=True)
            else:
                print(
                    f"Asked {host} to let you join room {room}.\n"
                    f"SAS: {first['sas']}  (read it to the host's owner; they must see the same code)\n"
                    "Waiting for their approval...",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
        view = c.call("room.join", **params, wait=True, timeout_s=wait)
    text = (
        f"Joined room {view['room_id']} as the guest (SAS {view.get('sas') or '-'}).\n"
        f"Topic: {render.safe(view['topic'])}\nWatch the room: clawroom watch --room {view['room_id']}"
    )
    return _out(cfg, view, text)
