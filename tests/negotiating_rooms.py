"""Rooms negotiated by the demo negotiator between two DaemonProcess daemons, held at a gate until all are
joined (tests/gated_agent.py): shared by the crash and partition suites."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import clawroomd.demo.negotiator as negotiator
from clawroomd.cli.demo import FIELDS
from clawroomd.testing import DaemonProcess

AGENT = Path(__file__).with_name("gated_agent.py")
EVENTS_PER_ROOM = 10  # created, joined, 5 messages, close proposed, close accepted, room closed


def agent(gate: Path, role: str) -> list[str]:
    return [sys.executable, str(AGENT), str(gate), negotiator.__file__, "--role", role]


def open_rooms(host: DaemonProcess, guest: DaemonProcess, count: int, gate: Path, **create: Any) -> list[str]:
    """`count` rooms created on `host` and joined by `guest`, each side's agent waiting for `gate`."""
    rooms = []
    with host.client() as hc, guest.client() as gc:
        for i in range(count):
            created = hc.call("room.create", topic=f"room {i}", fields=FIELDS, max_turns=20,
                              agent_command=agent(gate, "host"), **create)  # fmt: skip
            gc.call("room.join", join_url=created["join_url"], agent_command=agent(gate, "guest"))
            rooms.append(created["room_id"])
    return rooms


def progress(daemon: DaemonProcess) -> tuple[int, int]:
    """(progress units: turns, plus 2 per closed room; rooms still open) as the daemon reports them."""
    rows = daemon.call("room.list")["rooms"]
    return sum(r["turns"] + (2 if r["result"] else 0) for r in rows), sum(1 for r in rows if not r["result"])


def open_rows(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return [r for r in daemon.call("room.list")["rooms"] if not r["result"]]
