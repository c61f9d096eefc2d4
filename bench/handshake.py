"""Join latency: TCP connect + WebSocket upgrade + Noise XX + identity check + invite check + 'accepted'.

Measured from the guest's side against a host in another process on 127.0.0.1, interleaved with bare
trio-websocket connects to the same process so both see the same machine load. Prints p50/p99 and the ratio.

    python bench/handshake.py [--joins 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio
from trio_websocket import WebSocketRequest, open_websocket, serve_websocket

from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite, check_invite, new_invite
from clawroomd.link import PeerConnection, dial_peer, serve_peers

GOAL_P50_MS = 15.0


def secret_for(seed: bytes, i: int) -> bytes:
    return hashlib.sha256(seed + i.to_bytes(4, "big")).digest()[:16]


def room_for(i: int) -> str:
    return f"cr_{i:08x}"


async def serve(joins: int, seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    now = int(time.time() * 1000)
    records = {room_for(i): new_invite(room_for(i), secret_for(seed, i), now) for i in range(joins)}

    async def authorize(peer_key: bytes, invite: Invite | None) -> None:
        assert invite is not None
        record = records[invite.room_id]
        check_invite(record, invite, int(time.time() * 1000))
        records[invite.room_id] = replace(record, used=True)

    async def handler(conn: PeerConnection) -> None:
        async for _ in conn:
            pass

    async def bare_handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except Exception:
            return

    async with trio.open_nursery() as nursery:
        peer_addr = await nursery.start(
            partial(
                serve_peers,
                "127.0.0.1",
                0,
                identity=identity,
                static_private=os.urandom(32),
                authorize=authorize,
                handler=handler,
            )
        )
        bare = await nursery.start(partial(serve_websocket, bare_handler, "127.0.0.1", 0, None))
        print(json.dumps({"peer": peer_addr[1], "bare": bare.port, "peer_id": identity.peer_id}), flush=True)
        await trio.sleep_forever()


async def measure(joins: int, seed: bytes, ports: dict[str, int], peer_id: str) -> tuple[list[float], list[float]]:
    guest = Identity.from_seed(os.urandom(32))
    guest_static = os.urandom(32)
    noise_ms: list[float] = []
    bare_ms: list[float] = []
    warmup = 10
    for i in range(joins + warmup):
        t0 = time.perf_counter()
        async with open_websocket("127.0.0.1", ports["bare"], "/", use_ssl=False):
            t1 = time.perf_counter()
        if i >= warmup:
            bare_ms.append((t1 - t0) * 1000)
        if i >= joins:  # warm-up joins use the last invites
            continue
        invite = Invite(room_id=room_for(i), secret=secret_for(seed, i))
        t0 = time.perf_counter()
        async with dial_peer(
            ("127.0.0.1", ports["peer"]),
            identity=guest,
            static_private=guest_static,
            expected_peer_id=peer_id,
            invite=invite,
        ):
            t1 = time.perf_counter()
        noise_ms.append((t1 - t0) * 1000)
    return noise_ms, bare_ms


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=300)
    parser.add_argument("--serve", metavar="SEED_HEX", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, args.joins, bytes.fromhex(args.serve))
        return
    if args.joins < 200:
        parser.error("use at least 200 joins")
    seed = os.urandom(32)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", seed.hex(), "--joins", str(args.joins)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        noise_ms, bare_ms = trio.run(
            measure, args.joins, seed, {"peer": info["peer"], "bare": info["bare"]}, info["peer_id"]
        )
    finally:
        server.terminate()
        server.wait()
    n50, n99, b50, b99 = pct(noise_ms, 0.5), pct(noise_ms, 0.99), pct(bare_ms, 0.5), pct(bare_ms, 0.99)
    print(f"joins: {len(noise_ms)} (host in a separate process, 127.0.0.1, {os.cpu_count()} CPUs)")
    print(
        f"bare trio-websocket connect   p50 {b50:6.2f} ms   p99 {b99:6.2f} ms   mean {statistics.mean(bare_ms):6.2f} ms"
    )
    mean = statistics.mean(noise_ms)
    print(f"clawroom join (XX+invite)     p50 {n50:6.2f} ms   p99 {n99:6.2f} ms   mean {mean:6.2f} ms")
    print(f"ratio join/bare               p50 {n50 / b50:6.2f}x    p99 {n99 / b99:6.2f}x")
    print(f"goal p50 <= {GOAL_P50_MS:g} ms: {'met' if n50 <= GOAL_P50_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
