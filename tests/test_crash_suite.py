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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from negotiating_rooms import EVENTS_PER_ROOM, open_rooms, open_rows, progress

from clawroomd.testing import DaemonProcess, wait_for
from clawroomd.testing.consistency import database_problems, room_problems

pytestmark = pytest.mark.slow
LONG = os.environ.get("CLAWROOM_LONG") == "1"
ROOMS = 100 if LONG else 50
KILLS = 60 if LONG else 20
STEPS_PER_ROOM = 7  # progress units per room as `room.list` shows them: 5 turns, then 2 for the result
TUNING = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.3, "send_timeout": 5.0}


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
        rooms = open_rooms(host, guest, ROOMS, gate)
        gate.touch()  # every room is joined: the agents start
        for n, kill in enumerate(kills, 1):
            try:
                wait_for(
                    f"progress {kill.at_progress}", lambda k=kill: progress(host)[0] >= k.at_progress, 60, poll=0.01
                )
            except AssertionError as err:
                fail(f"before kill {n}: {err} (at {progress(host)[0]})")
            time.sleep(kill.delay)
            done, still_open = progress(host)
            victim = daemons[kill.victim]
            victim.kill()
            log.append(
                f"{n}: {kill.victim} at progress {done} ({still_open} rooms open), down {kill.down:.2f} s"
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
                wait_for(f"every room closed on the {d.name}", lambda d=d: not open_rows(d), 60, poll=0.1)
            except AssertionError as err:
                stuck = open_rows(d)
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
