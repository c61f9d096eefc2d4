"""Start-up cost of a state dir holding many rooms: opening the store and restoring every room.

Run: python bench/restore.py [--rooms 1000] [--repeat 3]
Builds N closed rooms (7 signed events each, agreement reached) in a fresh state dir with the real core
and Store, then times, in-process: ``Store(state_dir)`` as the daemon opens it (schema and integrity checks) and
``Rooms.restore()`` (every room rebuilt from its envelopes and verified, transcripts checked).
Prints the medians. Measured on the build machine (2 cores), 1,000 rooms, 7,000 events:
before issue 7 (hash links only, line counts): open 20 ms + restore 408 ms;
after (hash links, stored hashes, head signature, quick_check, transcript contents): see the note.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import roompair

from clawroomd.daemon.config import DaemonConfig
from clawroomd.daemon.store import Store
from clawroomd.daemon.wiring import Daemon


def build(state: Path, rooms: int) -> int:
    events = 0
    with Store(state) as store:
        for i in range(rooms):
            room_id = f"cr_{i:016x}"
            store.create_room(room_id, "host", {"topic": "bench"}, 1, peer_key=None, phase="closed")
            events += _store_room(store, room_id)
    return events


def _store_room(store: Store, room_id: str) -> int:
    saved = roompair.ROOM_ID
    roompair.ROOM_ID = room_id
    try:
        p = roompair.Pair().join().agree_all()
        p.propose_close("host")
        p.accept_close("guest")
    finally:
        roompair.ROOM_ID = saved
    with store.transaction():
        for e in p.host.log:
            h = e.header
            store.append_event(room_id, seq=h.seq, hash=e.hash, envelope=e.envelope, kind=e.kind,
                               author=h.author, ts_ms=h.ts, sid=h.sid, transcript=e.to_json())
        store.update_room(room_id, peer_key=roompair.GUEST.public_key, now_ms=2)
    return len(p.host.log)


def time_start(state: Path) -> tuple[float, float, int]:
    # As the daemon opens it: transcripts are checked by the restore, after each room is verified.
    # (Before that split, Store() checked them itself and had no `repair` parameter.)
    kw = {"repair": False} if "repair" in inspect.signature(Store).parameters else {}
    t0 = time.perf_counter()
    store = Store(state, **kw)
    t1 = time.perf_counter()
    restored = 0

    async def main() -> None:
        nonlocal restored
        config = DaemonConfig(state_dir=state, socket_path=state / "x.sock", listen_host="127.0.0.1", listen_port=0)
        async with trio.open_nursery() as nursery:
            daemon = Daemon(
                config=config, store=store, identity=roompair.HOST, static_key=os.urandom(32), nursery=nursery
            )
            daemon.rooms.restore()
            restored = len(daemon.rooms)
            nursery.cancel_scope.cancel()

    t2 = time.perf_counter()
    trio.run(main)
    t3 = time.perf_counter()
    store.close()
    return t1 - t0, t3 - t2, restored


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rooms", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        t = time.perf_counter()
        events = build(state, args.rooms)
        print(f"built {args.rooms} rooms, {events} events in {time.perf_counter() - t:.1f} s")
        opens, restores = [], []
        for _ in range(args.repeat):
            o, r, n = time_start(state)
            assert n == args.rooms, f"restored {n} of {args.rooms} rooms"
            opens.append(o)
            restores.append(r)
        print(f"Store() open: median {statistics.median(opens) * 1000:.0f} ms;"
              f" restore {args.rooms} rooms: median {statistics.median(restores) * 1000:.0f} ms"
              f" ({args.repeat} runs)")


if __name__ == "__main__":
    main()
