"""A flood of peer connections that never finish their handshake, and how long an honest join takes meanwhile.

Run: python bench/peer_flood.py [--flood 3000] [--fd-limit 1024] [--joins 3]
Starts a host and a guest daemon on 127.0.0.1, lowers the host's open-file limit (soft and hard) to
`--fd-limit` with prlimit, then opens `--flood` TCP connections to the host's peer port from 127.0.0.2-101
(half stay idle, half send the WebSocket upgrade and then nothing) and keeps reopening whichever the host
closes. Meanwhile it times `--joins` honest joins (room.create on the host, room.join on the guest) and
counts the host's log lines about running out of descriptors, and its tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import trio

from clawroomd.client import AsyncClient
from clawroomd.testing import DaemonProcess

SOURCES = [f"127.0.0.{i}" for i in range(2, 102)]


def upgrade(port: int) -> bytes:
    return (
        f"GET /clawroom/1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Flood:
    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.opened = self.held = 0

    async def slot(self, i: int) -> None:
        """Keep one flood connection open: reopen it whenever the host closes it."""
        source = SOURCES[i % len(SOURCES)]
        while True:
            s = trio.socket.socket()
            try:
                await s.bind((source, 0))
                with trio.move_on_after(5):
                    await s.connect(("127.0.0.1", self.port))
                    self.opened += 1
                    if i % 2:
                        await s.send(upgrade(self.port))
                    self.held += 1
                    try:
                        while await s.recv(4096):  # until the host closes it
                            pass
                    finally:
                        self.held -= 1
            except OSError:
                await trio.sleep(0.05)
            finally:
                s.close()


async def run(host: DaemonProcess, guest: DaemonProcess, flood_size: int, joins: int) -> tuple[list[float], int, int]:
    flood = Flood(host.port, flood_size)
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        for i in range(flood_size):
            nursery.start_soon(flood.slot, i)
        await trio.sleep(5)  # let the flood build up
        async with AsyncClient(host.socket) as h, AsyncClient(guest.socket) as g:
            for _ in range(joins):
                created = await h.call("room.create", topic="t", fields=["x"])
                t0 = time.perf_counter()
                try:
                    await g.call("room.join", join_url=created["join_url"], timeout_s=60)
                    latencies.append(time.perf_counter() - t0)
                except Exception as exc:  # a failed join is a result here
                    print(f"join failed after {time.perf_counter() - t0:.1f} s: {exc}")
                    latencies.append(float("inf"))
        opened, held = flood.opened, flood.held
        nursery.cancel_scope.cancel()
    return latencies, opened, held


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=3000)
    ap.add_argument("--fd-limit", type=int, default=1024)
    ap.add_argument("--joins", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host = DaemonProcess(Path(tmp) / "host", name="host").start()
        guest = DaemonProcess(Path(tmp) / "guest", name="guest").start()
        try:
            assert host.proc is not None
            limit = f"--nofile={args.fd_limit}:{args.fd_limit}"
            subprocess.run(["prlimit", f"--pid={host.proc.pid}", limit], check=True)
            latencies, opened, held = trio.run(run, host, guest, args.flood, args.joins)
            fds = len(list(Path(f"/proc/{host.proc.pid}/fd").iterdir()))
            status = Path(f"/proc/{host.proc.pid}/status").read_text().splitlines()
            peak = next(int(x.split()[1]) // 1024 for x in status if x.startswith("VmHWM:"))
            log = host.log_path.read_text(errors="replace")
            print(f"flood: {args.flood} connections kept up ({opened} opened in all), {held} open at the end; "
                  f"host fd limit {args.fd_limit}, {fds} fds open at the end, peak RSS {peak} MB")
            shown = [f"{x:.2f}" for x in latencies]
            print(f"honest join latency: {shown} s (median {statistics.median(latencies):.2f} s)")
            print(f"host log: {log.count('Too many open files') + log.count('too many open files')} 'too many open "
                  f"files' mentions, {log.count('Traceback')} tracebacks, {len(log.splitlines())} lines")
        finally:
            for d in (host, guest):
                with contextlib.suppress(Exception):
                    d.stop()


if __name__ == "__main__":
    main()
