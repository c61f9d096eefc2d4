"""An honest room's latency and the host daemon's memory while hostile peers and local clients attack it.

Run: python bench/hostile.py [--messages 200] [--ramp 2] [--only NAME]
Starts a host and a guest daemon on 127.0.0.1 (real processes), opens an honest room between them, and
measures its send -> peer-sees latency (p50/p99; bench/relay.py's measure) with no attack (the baseline,
measured again at the end), then during each attack of clawroomd/testing/hostile.py in turn: junk after
a valid handshake, a frame flood, stalls mid-frame, replayed frames, 300 handshakes never finished, a
local request flood that never reads, huge and deeply nested request lines, and 50 watchers that never
read. Prints, per row, p50 and p99 with the ratio to the baseline, the host's RSS before and at its
peak during the attack, its open descriptors afterwards, and what the attack did.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import trio

from clawroomd.testing import DaemonProcess
from clawroomd.testing.hostile import ATTACKS, HOSTILE_TUNING, Figures, HonestRoom, Target, under_attack


async def run(host: DaemonProcess, guest: DaemonProcess, names: list[str], n: int, ramp: float) -> list[Figures]:
    target = Target(host)
    rows = []
    async with HonestRoom(host, guest) as honest:
        await honest.probe(20)  # warm up: imports, caches, the first room
        rows.append(await under_attack("no attack", None, target, honest, n=n, ramp=0))
        for name in names:
            rows.append(await under_attack(name, ATTACKS[name], target, honest, n=n, ramp=ramp))
            await trio.sleep(ramp)  # let the host shed what the attack left
        rows.append(await under_attack("no attack, again", None, target, honest, n=n, ramp=0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200, help="honest round trips per row (default 200)")
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds each attack runs before the probe")
    ap.add_argument("--only", action="append", choices=sorted(ATTACKS), help="run only this attack (repeatable)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host = DaemonProcess(Path(tmp) / "host", name="host", tuning=HOSTILE_TUNING, log_level="warning").start()
        guest = DaemonProcess(Path(tmp) / "guest", name="guest", tuning=HOSTILE_TUNING, log_level="warning").start()
        try:
            rows = trio.run(run, host, guest, args.only or list(ATTACKS), args.messages, args.ramp)
            log = host.log_path.read_text(errors="replace")
        finally:
            host.stop()
            guest.stop()
    base = rows[0].latency
    print(f"{'attack':<26} {'p50 ms':>8} {'p99 ms':>8} {'(ratio p50/p99)':<16} host memory and what the attack did")
    for row in rows:
        print(row.line(None if row is rows[0] else base))
    print(f"host log: {len(log.splitlines())} lines at level warning, {log.count('Traceback')} tracebacks")


if __name__ == "__main__":
    main()
