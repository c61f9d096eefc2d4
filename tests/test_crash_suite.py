"""Crash suite: 50 rooms in flight between two real daemons, each side driven by the demo negotiator as its
agent command, while the host or the guest is killed with SIGKILL at seeded random moments, 20 times,
and restarted on the same state dir and port. Every room must finish with the agreement; both sides'
transcripts (file and local API) must be byte-identical, with every seq once and every hash link and
signature good; both databases must pass SQLite's integrity_check.

The schedule comes from one seed (printed, and named in every failure): which side dies, at which point
of the rooms' progress (the host's count of messages and closes, so kills spread over the whole
negotiation, never after it), a delay of up to 30 ms past that point, how long the daemon stays down,
and whether it is killed again while it restarts (its restore and transcript repair then die midway).
`CLAWROOM_CRASH_SEED=N` replays a schedule; the interleaving inside the daemons still varies with the
machine's timing, which is why each run uses a fresh seed. `CLAWROOM_LONG=1` runs 100 rooms and 60 kills.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import clawroomd.demo.negotiator as negotiator
from clawroomd.cli.demo import FIELDS
from clawroomd.testing import DaemonProcess, wait_for
from clawroomd.testing.consistency import database_problems, room_problems

pytestmark = pytest.mark.slow
LONG = os.environ.get("CLAWROOM_LONG") == "1"
ROOMS = 100 if LONG else 50
KILLS = 60 if LONG else 20
EVENTS_PER_ROOM = 10  # created, joined, 5 messages, close proposed, close accepted, room closed
STEPS_PER_ROOM = 7  # progress units per room as `room.list` shows them: 5 turns, then 2 for the result
TUNING = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.3, "send_timeout": 5.0}
AGENT = Path(__file__).with_name("gated_agent.py")


@dataclass
class Kill:
    victim: str
    at_progress: int
    delay: float
    down: float
    again_after: float | None  # kill it once more this long after relaunching it


def schedule(seed: int) -> list[Kill]:
    rng = random.Random(seed)
    total = ROOMS * STEPS_PER_ROOM
    points = sorted(rng.sample(range(total // 20, total * 19 // 20), KILLS))
    return [
        Kill(
            victim=rng.choice(("host", "guest")),
            at_progress=p,
            delay=rng.uniform(0, 0.03),
            down=rng.uniform(0, 0.4),
            again_after=rng.uniform(0.05, 0.6) if rng.random() < 0.25 else None,
        )
        for p in points
    ]


def progress(host: DaemonProcess) -> tuple[int, int]:
    """(progress units, rooms still open) as the host reports them."""
    rows = host.call("room.list")["rooms"]
    return sum(r["turns"] + (2 if r["result"] else 0) for r in rows), sum(1 for r in rows if not r["result"])


def agent(gate: Path, role: str) -> list[str]:
    return [sys.executable, "-I", "-S", str(AGENT), str(gate), negotiator.__file__, "--role", role]


def test_fifty_rooms_survive_twenty_seeded_kill_9_cycles(tmp_path: Path) -> None:
    seed = int(os.environ.get("CLAWROOM_CRASH_SEED") or random.randrange(1 << 32))
    print(f"crash suite: seed {seed} (CLAWROOM_CRASH_SEED={seed} replays the schedule)")
    kills = schedule(seed)
    gate = tmp_path / "gate"
    host = DaemonProcess(tmp_path / "host", name="host", tuning=TUNING).start()
    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning=TUNING).start()
    daemons = {"host": host, "guest": guest}
    log: list[str] = []
    started = time.monotonic()

    def fail(what: str) -> None:
        pytest.fail(
            f"seed {seed}: {what}\nkills so far:\n  " + "\n  ".join(log)
            + f"\nhost log:\n{host.log_tail(15)}\nguest log:\n{guest.log_tail(15)}"
        )  # fmt: skip

    try:
        rooms = []
        with host.client() as hc, guest.client() as gc:
            for i in range(ROOMS):
                created = hc.call("room.create", topic=f"crash room {i}", fields=FIELDS, max_turns=20,
                                  agent_command=agent(gate, "host"))  # fmt: skip
                gc.call("room.join", join_url=created["join_url"], agent_command=agent(gate, "guest"))
                rooms.append(created["room_id"])
        gate.touch()  # every room is joined: the agents start
        for n, kill in enumerate(kills, 1):
            try:
                wait_for(
                    f"progress {kill.at_progress}", lambda k=kill: progress(host)[0] >= k.at_progress, 60, poll=0.01
                )
            except AssertionError as err:
                fail(f"before kill {n}: {err} (at {progress(host)[0]})")
            time.sleep(kill.delay)
            done, open_rooms = progress(host)
            victim = daemons[kill.victim]
            victim.kill()
            log.append(
                f"{n}: {kill.victim} at progress {done} ({open_rooms} rooms open), down {kill.down:.2f} s"
                + (f", killed again {kill.again_after:.2f} s into its restart" if kill.again_after else "")
            )
            time.sleep(kill.down)
            if kill.again_after is not None:
                victim.launch()
                time.sleep(kill.again_after)
                victim.kill()
            try:
                victim.start(timeout=30)
            except RuntimeError as err:
                fail(f"{kill.victim} did not restart after kill {n}: {err}")
        kill_phase = time.monotonic() - started
        for d in (host, guest):
            try:
                wait_for(f"every room closed on the {d.name}",
                         lambda d=d: all(r["result"] for r in d.call("room.list")["rooms"]), 60, poll=0.1)  # fmt: skip
            except AssertionError as err:
                stuck = [r for r in d.call("room.list")["rooms"] if not r["result"]]
                fail(f"{err}: {len(stuck)} open, e.g. {stuck[:2]}")
        problems: list[str] = []
        for room_id in rooms:
            for d in (host, guest):
                result: dict[str, Any] = d.call("room.result", room_id=room_id, wait_s=10)
                if result["status"] != "agreement_reached":
                    problems.append(f"room {room_id}: {d.name} ended it as {result['status']}: {result.get('reason')}")
            problems += room_problems(host, guest, room_id)
        print("\n".join(log))
        total = time.monotonic() - started
        print(f"crash suite: {len(kills)} kills in {kill_phase:.1f} s, every room closed and checked at {total:.1f} s")
    finally:
        for d in (guest, host):
            d.stop()
    for d in (host, guest):
        problems += database_problems(d.state_dir, dict.fromkeys(rooms, EVENTS_PER_ROOM))
    if problems:
        fail(f"{len(problems)} problem(s):\n" + "\n".join(problems[:20]))
