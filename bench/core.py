"""Core micro-benchmark: signed events per second and the host's cost to validate one guest message.

Run: python bench/core.py [--n 2000]. Prints medians and the ratio against a bare Ed25519 sign+verify
of the same payload size measured in the same run (the floor any signed protocol pays).
"""

from __future__ import annotations

import argparse
import statistics
import time

from clawroomd.core.envelope import open_envelope, seal
from clawroomd.core.events import FieldSpec, Header, Joined, Message, Move, RoomCreated
from clawroomd.core.identity import Identity, verify
from clawroomd.core.room import GuestRoom, HostRoom

HOST = Identity.from_seed(b"h" * 32)
GUEST = Identity.from_seed(b"g" * 32)
TEXT = "Minor units accepted. Idempotency: need a 90-day grace period for migration. " * 3


def bench_sign_verify(n: int) -> tuple[float, float]:
    header = Header(
        room="cr_0011223344556677", seq=5, prev=bytes(32), author="guest", key=GUEST.public_key, ts=1, sid="s"
    )
    body = Message(text=TEXT, moves=(Move(op="propose", field="price", value="50 EUR"),))
    t0 = time.perf_counter()
    for _ in range(n):
        open_envelope(seal(GUEST, header, body).envelope)
    ours = (time.perf_counter() - t0) / n
    payload = seal(GUEST, header, body).envelope
    t0 = time.perf_counter()
    for _ in range(n):
        verify(GUEST.public_key, GUEST.sign(payload), payload)
    floor = (time.perf_counter() - t0) / n
    return ours, floor


def bench_host_validation(n: int) -> list[float]:
    samples: list[float] = []
    spec = RoomCreated(topic="bench", goal="", fields=(FieldSpec(name="price"),), max_turns=1000)
    room_no = 0
    while len(samples) < n:
        room_no += 1
        room_id = f"cr_{room_no:016x}"
        host = HostRoom.create(HOST, room_id=room_id, spec=spec, now_ms=1, mono_ms=1)
        guest = GuestRoom(GUEST, room_id=room_id, host_key=HOST.public_key)
        for e in host.log:
            guest.receive(e.envelope, now_ms=10_000)
        sub = host.receive(guest.prepare(Joined(), sid="j", now_ms=2).events[0].envelope, now_ms=2, mono_ms=2)
        for e in sub.events:
            guest.receive(e.envelope, now_ms=10_000)
        for i in range(490):
            for e in host.send(Message(text=TEXT), sid=f"h{i}", now_ms=10 + i, mono_ms=10 + i).events:
                guest.receive(e.envelope, now_ms=10_000)
            body = Message(text=TEXT, moves=(Move(op="propose", field="price", value=f"{i} EUR"),))
            env = guest.prepare(body, sid=f"g{i}", now_ms=10 + i).events[0].envelope
            t0 = time.perf_counter()
            sub = host.receive(env, now_ms=10 + i, mono_ms=10 + i, from_key=GUEST.public_key)
            samples.append(time.perf_counter() - t0)
            for e in sub.events:
                guest.receive(e.envelope, now_ms=10_000)
            if len(samples) >= n:
                break
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    ours, floor = bench_sign_verify(args.n)
    print(f"sign+verify one message event : {ours * 1e6:7.1f} us  -> {1 / ours:8.0f} events/s")
    print(
        f"bare Ed25519 sign+verify       : {floor * 1e6:7.1f} us  -> {1 / floor:8.0f} /s  (ratio {ours / floor:.2f}x)"
    )
    samples = sorted(bench_host_validation(args.n))
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
    print(
        f"host validation of one guest message (decode+verify+rules+append): p50 {p50 * 1e6:.1f} us, "
        f"p99 {p99 * 1e6:.1f} us over {len(samples)}"
    )


if __name__ == "__main__":
    main()
