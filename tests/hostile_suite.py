"""What tests/test_hostile_peer.py and test_hostile_client.py share: a host and a guest daemon (real
processes) with the fast keepalive of HOSTILE_TUNING, and the bounds every attack must stay within."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from clawroomd.testing import DaemonProcess
from clawroomd.testing.hostile import HOSTILE_TUNING, Attack, Figures, HonestRoom, Target, open_fds, under_attack

PROBES = 30  # honest round trips measured during each attack
# Generous: the machine is shared and slow under load. Unattacked, p50 is ~1.5 ms and p99 ~3 ms here.
MAX_P50_MS = 100.0
MAX_P99_MS = 600.0


def daemon_pair(tmp: Path, **host_tuning: Any) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    host = DaemonProcess(tmp / "host", name="host", tuning={**HOSTILE_TUNING, **host_tuning}).start()
    try:
        guest = DaemonProcess(tmp / "guest", name="guest", tuning=HOSTILE_TUNING).start()
    except BaseException:
        host.stop()
        raise
    try:
        yield host, guest
    finally:
        guest.stop()
        host.stop()


async def attack_and_measure(
    pair: tuple[DaemonProcess, DaemonProcess], name: str, attack: Attack, *, ramp: float = 1.5
) -> tuple[Figures, Target]:
    """Run `attack` against the host while timing an honest room; checks the bounds, prints the figures,
    and waits for the host to give back what the attack held (descriptors) once it stops."""
    host, guest = pair
    assert host.proc is not None
    target = Target(host)
    await target.bind()
    async with HonestRoom(host, guest) as honest:
        await honest.probe(5)  # the room is up and warm
        fds_before = open_fds(host.proc.pid)
        figures = await under_attack(name, attack, target, honest, n=PROBES, ramp=ramp)
        print(figures.line())
        lat = figures.latency
        assert lat.p50_ms < MAX_P50_MS and lat.p99_ms < MAX_P99_MS, f"honest room too slow during {name}: {lat}"
        try:
            with trio.fail_after(15):  # everything the attack held is given back
                while open_fds(host.proc.pid) > fds_before + 2:
                    await trio.sleep(0.1)
        except trio.TooSlowError:
            fd_dir = f"/proc/{host.proc.pid}/fd"
            held = sorted(os.readlink(f"{fd_dir}/{fd}") for fd in os.listdir(fd_dir))
            raise AssertionError(f"the host still holds {len(held)} descriptors, {fds_before} before: {held}") from None
    assert host.proc.poll() is None
    return figures, target


def peak_growth_mb(figures: Figures) -> float:
    return (figures.rss_peak_kb - figures.rss_before_kb) / 1024


def log_problems(d: DaemonProcess) -> list[str]:
    """Log lines that must never appear, whatever a peer or client sends: tracebacks and errors."""
    return [line for line in d.log_path.read_text(errors="replace").splitlines()
            if "Traceback" in line or re.search(r"\b(ERROR|CRITICAL)\b", line)]  # fmt: skip


