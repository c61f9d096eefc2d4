"""Join latency and rate through two daemons: the guest's `room.join` call, from the join URL to the
answer (dial, WebSocket upgrade, Noise XX, invite check, the guest's `joined` event signed, sent,
appended by the host and streamed back), as an agent or the CLI sees it.

Run: python bench/joins.py [--joins 300] [--concurrent 300] [--concurrency 8]
Prints p50/p99 of sequential joins (each room created on A first, not timed), and joins/s when
`--concurrent` joins run `--concurrency` at a time (8: a host admits that many
handshakes at once from one address by default, `max_pending_per_address`).
bench/handshake.py times the link handshake alone.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from clawroomd.client import AsyncClient
from clawroomd.testing import DaemonProcess


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


async def _urls(a: AsyncClient, n: int) -> list[str]:
    out = []
    for i in range(n):
        r = await a.call("room.create", topic=f"join {i}", fields=["price"], max_turns=4)
        out.append(r["join_url"])
    return out


async def measure(sock_a: Path, sock_b: Path, joins: int, concurrent: int, concurrency: int) -> dict[str, Any]:
    async with AsyncClient(sock_a) as a, AsyncClient(sock_b) as b:
        for url in await _urls(a, 3):  # warm-up: first dial, caches
            await b.call("room.join", join_url=url, timeout_s=30)
        samples = []
        for url in await _urls(a, joins):
            t0 = time.perf_counter()
            await b.call("room.join", join_url=url, timeout_s=30)
            samples.append((time.perf_counter() - t0) * 1000)
        urls = await _urls(a, concurrent)
    limiter = trio.CapacityLimiter(concurrency)

    async def join(client: AsyncClient, url: str) -> None:
        async with limiter:
            await client.call("room.join", join_url=url, timeout_s=60)

    # one local-API connection per concurrent joiner, as separate agents or CLI calls would have
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(AsyncClient(sock_b)) for _ in range(concurrency)]
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i, url in enumerate(urls):
                nursery.start_soon(join, clients[i % concurrency], url)
        took = time.perf_counter() - t0
    return {
        "join_p50_ms": statistics.median(samples),
        "join_p99_ms": pct(samples, 0.99),
        "joins": len(samples),
        "joins_per_s": concurrent / took,
        "concurrent_joins": concurrent,
        "concurrency": concurrency,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--joins", type=int, default=300)
    ap.add_argument("--concurrent", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = DaemonProcess(Path(tmp) / "a", name="A", log_level="warning").start()
        b = DaemonProcess(Path(tmp) / "b", name="B", log_level="warning").start()
        try:
            out = trio.run(measure, a.socket, b.socket, args.joins, args.concurrent, args.concurrency)
        finally:
            b.stop()
            a.stop()
    print(f"room.join ({out['joins']} sequential): p50 {out['join_p50_ms']:.2f} ms, p99 {out['join_p99_ms']:.2f} ms "
          f"(goal p50 <= 15 ms)")
    print(f"{args.concurrent} joins, {args.concurrency} at a time: {out['joins_per_s']:.0f} joins/s (goal >= 500)")


if __name__ == "__main__":
    main()
