"""1,000 concurrent rooms between two daemons: all are open at once, all finish, peak RSS per daemon.

Run: python bench/rooms.py [--rooms 1000] [--concurrency 32] [--join-concurrency 8]
Phases: create every room on daemon A, join every one from daemon B (all open at the same time), then
negotiate each to a signed agreement_reached. Prints per-phase rates, the RSS of each daemon idle and
at peak (VmHWM), and the same daemon's idle RSS as the baseline for the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from clawroomd.client import AsyncClient
from clawroomd.testing import DaemonProcess


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


async def run(a: DaemonProcess, b: DaemonProcess, rooms: int, concurrency: int,
              join_concurrency: int = 8) -> dict[str, float]:
    limiter = trio.CapacityLimiter(concurrency)
    # the host admits 8 handshakes at a time per source address by default (max_pending_per_address)
    join_limiter = trio.CapacityLimiter(join_concurrency)
    ids: list[str] = []
    urls: list[str] = []
    out: dict[str, float] = {}
    async with AsyncClient(a.socket) as ca, AsyncClient(b.socket) as cb:

        async def create(i: int) -> None:
            async with limiter:
                r = await ca.call("room.create", topic=f"room {i}", fields=["price", "date"], max_turns=6)
                ids.append(r["room_id"])
                urls.append(r["join_url"])

        async def join(url: str) -> None:
            async with join_limiter:
                await cb.call("room.join", join_url=url, timeout_s=120)

        async def wait_turn(c: AsyncClient, room_id: str) -> None:
            while not (await c.call("room.status", room_id=room_id))["your_turn"]:
                await trio.sleep(0.005)

        async def negotiate(room_id: str) -> None:
            async with limiter:
                await wait_turn(ca, room_id)
                await ca.call("room.send", room_id=room_id, text="offer", propose={"price": "50", "date": "mon"})
                await wait_turn(cb, room_id)
                await cb.call("room.send", room_id=room_id, text="deal", accept=["price", "date"])
                await wait_turn(ca, room_id)
                await ca.call("room.close", room_id=room_id)
                await wait_turn(cb, room_id)
                await cb.call("room.close", room_id=room_id)

        for phase, fn, items in (("create", create, list(range(rooms))), ("join", join, urls),
                                 ("negotiate", negotiate, ids)):
            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for item in list(items):
                    nursery.start_soon(fn, item)
            out[phase] = time.perf_counter() - t0
            if phase == "join":
                info = await ca.call("daemon.info")
                out["open_at_once"] = info["open_rooms"]
        # all closed on both sides, with the same head
        listed_a = {r["room_id"]: r for r in (await ca.call("room.list"))["rooms"]}
        done = 0
        for room_id in ids:
            while True:
                sb = await cb.call("room.status", room_id=room_id)
                if sb["phase"] == "closed":
                    break
                await trio.sleep(0.01)
            sa = await ca.call("room.status", room_id=room_id)
            done += sa["result"]["status"] == sb["result"]["status"] == "agreement_reached" and sa["head"] == sb["head"]
        out["agreed"] = done
        out["listed"] = len(listed_a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rooms", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--join-concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = DaemonProcess(Path(tmp) / "a", name="A", log_level="warning").start()
        b = DaemonProcess(Path(tmp) / "b", name="B", log_level="warning").start()
        assert a.proc and b.proc
        idle = {n: rss_mb(d.proc.pid, "VmRSS") for n, d in (("A", a), ("B", b))}  # type: ignore[union-attr]
        try:
            out = trio.run(run, a, b, args.rooms, args.concurrency, args.join_concurrency)
            peak = {n: rss_mb(d.proc.pid, "VmHWM") for n, d in (("A", a), ("B", b))}  # type: ignore[union-attr]
        finally:
            a.stop()
            b.stop()
    n = args.rooms
    print(f"{n} rooms: create {out['create']:.1f} s ({n / out['create']:.0f}/s), join {out['join']:.1f} s "
          f"({n / out['join']:.0f}/s), negotiate to a signed close {out['negotiate']:.1f} s "
          f"({n / out['negotiate']:.0f} rooms/s)")
    print(f"open at once after joining: {out['open_at_once']:.0f}; closed with agreement_reached and equal heads "
          f"on both sides: {out['agreed']:.0f}/{n}")
    for name in ("A", "B"):
        print(f"daemon {name} ({'host' if name == 'A' else 'guest'}): idle RSS {idle[name]:.1f} MB, peak RSS "
              f"{peak[name]:.1f} MB (ratio {peak[name] / idle[name]:.1f}x idle; goal <= 150 MB)")


if __name__ == "__main__":
    main()
