"""Silent room.watch subscribers on a large transcript: the host daemon's memory while they sit, and after.

Run: python bench/watchers.py [--watchers 300] [--megabytes 5]
Builds one room between two real daemons whose transcript is about `--megabytes` MB (8,000-character
messages, host and guest in turn), then opens `--watchers` local-API connections to the host that each
call room.watch from the start and never read. Prints the host daemon's RSS before, its peak (VmHWM)
while the watchers sit, and its RSS once they have all closed.
"""

from __future__ import annotations

import argparse
import select
import socket
import tempfile
import time
from pathlib import Path

from clawroomd.client import Client
from clawroomd.testing import DaemonProcess

TEXT = "x" * 8000


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def build_room(host: DaemonProcess, guest: DaemonProcess, megabytes: float) -> tuple[str, int]:
    created = host.call("room.create", topic="big transcript", fields=["price"], max_turns=1000)
    room_id = created["room_id"]
    guest.call("room.join", join_url=created["join_url"])
    with host.client() as h, guest.client() as g:
        sides = [h, g]
        for i in range(int(megabytes * 1e6 // 8300) + 1):
            c: Client = sides[i % 2]
            while not c.call("room.status", room_id=room_id)["your_turn"]:
                time.sleep(0.002)
            c.call("room.send", room_id=room_id, text=TEXT)
        size = len(h.call("room.transcript", room_id=room_id)["events"])
    return room_id, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchers", type=int, default=300)
    ap.add_argument("--megabytes", type=float, default=5.0)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds to let the watchers' queues fill")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host = DaemonProcess(Path(tmp) / "host", name="host").start()
        guest = DaemonProcess(Path(tmp) / "guest", name="guest").start()
        try:
            assert host.proc is not None
            pid = host.proc.pid
            t0 = time.perf_counter()
            room_id, events = build_room(host, guest, args.megabytes)
            transcript = host.transcript(room_id).encode()
            took = time.perf_counter() - t0
            print(f"transcript: {events} events, {len(transcript) / 1e6:.1f} MB (built in {took:.0f} s)")
            print(f"host RSS before watchers: {rss_mb(pid):.0f} MB")
            socks = []
            request = f'{{"jsonrpc":"2.0","id":1,"method":"room.watch","params":{{"room_id":"{room_id}"}}}}\n'
            for _ in range(args.watchers):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, buffer little
                s.connect(str(host.socket))
                s.sendall(request.encode())
                socks.append(s)
            peak_rss = 0.0
            deadline = time.monotonic() + args.settle
            while time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_mb(pid))
                time.sleep(0.2)
            print(f"host RSS with {args.watchers} silent watchers: {rss_mb(pid):.0f} MB "
                  f"(highest sampled {peak_rss:.0f} MB, VmHWM {rss_mb(pid, 'VmHWM'):.0f} MB)")
            alive = sum(1 for s in socks if _open(s))
            print(f"watcher connections still open after {args.settle:g} s: {alive}")
            for s in socks:
                s.close()
            time.sleep(3)
            with host.client() as c:
                c.call("daemon.info")
            print(f"host RSS 3 s after they closed: {rss_mb(pid):.0f} MB")
        finally:
            for d in (host, guest):
                d.stop()


def _open(s: socket.socket) -> bool:
    """False if the daemon has closed this connection (seen without reading what it sent)."""
    poller = select.poll()
    poller.register(s, select.POLLRDHUP)
    return not poller.poll(0)


if __name__ == "__main__":
    main()
