"""A 5-turn scripted room between two daemons, from `room.create` to both daemons' final_result.json
(issue 9's goal: 300 ms), and the same room up to the moment both sides hold the close (no result files
waited for) as the baseline measured in the same run, so the ratio is the cost of results and summaries.

Run: python bench/result_room.py [--rooms 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import trio

from clawroomd.client import AsyncClient
from clawroomd.testing import DaemonProcess


async def wait_turn(c: AsyncClient, room_id: str) -> int:
    while True:
        view = await c.call("room.status", room_id=room_id)
        if view["your_turn"]:
            return int(view["seq"])
        await trio.sleep(0.002)


async def one_room(ca: AsyncClient, cb: AsyncClient, *, results: bool) -> float:
    t0 = time.perf_counter()
    created = await ca.call("room.create", topic="bench", fields=["price", "date"], max_turns=10)
    room_id = created["room_id"]
    await cb.call("room.join", join_url=created["join_url"], timeout_s=30)
    script = [
        (ca, {"text": "offer", "propose": {"price": "100"}}),
        (cb, {"text": "counter", "propose": {"price": "90"}}),
        (ca, {"text": "meet", "propose": {"price": "95", "date": "monday"}}),
        (cb, {"text": "deal", "accept": ["price", "date"]}),
        (ca, {"text": "thanks, closing"}),
    ]
    for c, move in script:
        seq = await wait_turn(c, room_id)
        await c.call("room.send", room_id=room_id, expect_seq=seq, **move)
    await ca.call("room.close", room_id=room_id)
    while (view := await cb.call("room.status", room_id=room_id))["lifecycle"] != "delivering":
        await trio.sleep(0.002)  # the guest countersigns once it holds the host's close proposal
    await cb.call("room.close", room_id=room_id, expect_seq=view["seq"])
    if results:
        a = await ca.call("room.result", room_id=room_id, wait_s=10)
        b = await cb.call("room.result", room_id=room_id, wait_s=10)
        assert a["files"] and b["files"] and a["head"] == b["head"], (a, b)
    else:
        for c in (ca, cb):
            while (await c.call("room.status", room_id=room_id))["lifecycle"] not in ("closed", "error"):
                await trio.sleep(0.002)
    return (time.perf_counter() - t0) * 1000


async def run(a: DaemonProcess, b: DaemonProcess, rooms: int) -> tuple[list[float], list[float]]:
    with_results, baseline = [], []
    async with AsyncClient(a.socket) as ca, AsyncClient(b.socket) as cb:
        await one_room(ca, cb, results=True)  # warm-up
        for _ in range(rooms):
            baseline.append(await one_room(ca, cb, results=False))
            with_results.append(await one_room(ca, cb, results=True))
    return with_results, baseline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rooms", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = DaemonProcess(Path(tmp) / "a", name="a", log_level="warning").start()
        b = DaemonProcess(Path(tmp) / "b", name="b", log_level="warning").start()
        try:
            full, base = trio.run(run, a, b, args.rooms)
        finally:
            b.stop()
            a.stop()
    p50, p50b = statistics.median(full), statistics.median(base)
    print(f"5-turn room, create -> both final_result.json: p50 {p50:.1f} ms, max {max(full):.1f} ms (goal 300 ms)")
    print(f"baseline, create -> both sides closed:         p50 {p50b:.1f} ms, max {max(base):.1f} ms")
    print(f"ratio {p50 / p50b:.2f}x  ({args.rooms} rooms each, alternating)")


if __name__ == "__main__":
    main()
