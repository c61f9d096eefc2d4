"""Relay latency and throughput: agent A's `room.send` to agent B's watch notification, through two daemons.

Run: python bench/relay.py [--messages 1000] [--rooms 16] [--seconds 5]
Prints p50/p90/p99 of the latency over every message (both directions: host->guest and guest->host),
ping-pong and parallel-room messages/s, and a bare trio-websocket echo round trip between two processes
measured in the same run, with the ratio. Both daemons run as real processes on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from trio_websocket import open_websocket

from clawroomd.client import AsyncClient
from clawroomd.testing import DaemonProcess

HERE = Path(__file__).resolve().parent


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


async def echo_baseline(n: int) -> list[float]:
    proc = subprocess.Popen([sys.executable, str(HERE / "echo_server.py")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        payload = b"x" * 300  # about the size of one signed message event
        out = []
        async with open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
            for _ in range(50):
                await ws.send_message(payload)
                await ws.get_message()
            for _ in range(n):
                t0 = time.perf_counter()
                await ws.send_message(payload)
                await ws.get_message()
                out.append(time.perf_counter() - t0)
        return out
    finally:
        proc.terminate()
        proc.wait()


async def open_room(a: AsyncClient, b: AsyncClient, max_turns: int) -> str:
    created = await a.call("room.create", topic="bench", fields=["price"], max_turns=max_turns,
                           turn_timeout_s=600)
    await b.call("room.join", join_url=created["join_url"])
    return str(created["room_id"])


async def wait_seq(notes: trio.MemoryReceiveChannel, room_id: str, seq: int) -> float:  # type: ignore[type-arg]
    async for note in notes:
        if note["method"] == "room.event" and note["params"]["room_id"] == room_id \
                and note["params"]["event"]["seq"] == seq:
            return time.perf_counter()
    raise RuntimeError("watch ended")


async def ping_pong(sock_a: Path, sock_b: Path, messages: int) -> tuple[list[float], float]:
    """One room, strictly alternating turns; latency = send call start -> the other side's notification."""
    async with AsyncClient(sock_a) as a, AsyncClient(sock_b) as b, AsyncClient(sock_a) as wa, \
            AsyncClient(sock_b) as wb:
        room_id = await open_room(a, b, max_turns=min(messages, 1000))
        seq = (await a.call("room.status", room_id=room_id))["seq"]
        await wa.call("room.watch", room_id=room_id, after=seq)
        await wb.call("room.watch", room_id=room_id, after=seq)
        samples = []
        t_start = time.perf_counter()
        for i in range(min(messages, 1000)):
            sender, watcher = (a, wb) if i % 2 == 0 else (b, wa)
            seq += 1
            t0 = time.perf_counter()
            await sender.call("room.send", room_id=room_id, text=f"offer number {i}: the quick brown fox " * 3)
            t1 = await wait_seq(watcher.notifications(), room_id, seq)
            samples.append(t1 - t0)
        return samples, len(samples) / (time.perf_counter() - t_start)


async def parallel(sock_a: Path, sock_b: Path, rooms: int, seconds: float) -> float:
    """`rooms` rooms ping-ponging at once for `seconds`: sustained messages/s through the two daemons.
    Each room has its own agent connection on each side, as separate agents would; each agent waits for
    its turn on its watch subscription, not by polling."""
    count = 0

    async def drive(room_id: str, deadline: float) -> None:
        nonlocal count
        async with AsyncClient(sock_a) as a, AsyncClient(sock_b) as b:
            seq = (await a.call("room.status", room_id=room_id))["seq"]
            for c in (a, b):
                await c.call("room.watch", room_id=room_id, after=seq)
            i = 0
            while trio.current_time() < deadline and i < 1000:
                sender, other = (a, b) if i % 2 == 0 else (b, a)
                await sender.call("room.send", room_id=room_id, text=f"parallel {i}")
                seq += 1
                await wait_seq(other.notifications(), room_id, seq)  # the peer's agent sees it: its turn
                count += 1
                i += 1

    async with AsyncClient(sock_a) as a, AsyncClient(sock_b) as b:
        ids = [await open_room(a, b, max_turns=1000) for _ in range(rooms)]
    deadline = trio.current_time() + seconds
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for room_id in ids:
            nursery.start_soon(drive, room_id, deadline)
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = DaemonProcess(Path(tmp) / "a", name="A", log_level="warning").start()
        b = DaemonProcess(Path(tmp) / "b", name="B", log_level="warning").start()
        try:
            echo = trio.run(echo_baseline, args.messages)
            relay, pp_rate = trio.run(ping_pong, a.socket, b.socket, args.messages)
            rate = trio.run(parallel, a.socket, b.socket, args.rooms, args.seconds)
        finally:
            a.stop()
            b.stop()
    ms = 1000
    print(f"bare trio-websocket echo round trip ({len(echo)}): p50 {statistics.median(echo) * ms:.3f} ms, "
          f"p90 {pct(echo, 0.9) * ms:.3f} ms, p99 {pct(echo, 0.99) * ms:.3f} ms")
    print(f"relay send -> peer notification ({len(relay)} messages): p50 {statistics.median(relay) * ms:.3f} ms, "
          f"p90 {pct(relay, 0.9) * ms:.3f} ms, p99 {pct(relay, 0.99) * ms:.3f} ms")
    print(f"ratio relay/echo: p50 {statistics.median(relay) / statistics.median(echo):.1f}x, "
          f"p99 {pct(relay, 0.99) / pct(echo, 0.99):.1f}x")
    print(f"ping-pong in one room: {pp_rate:.0f} msgs/s; {args.rooms} rooms in parallel: {rate:.0f} msgs/s sustained")


if __name__ == "__main__":
    main()
