"""What local-API subscribers that do not read can make the daemon hold: paced streams hold a cursor, all
connections' notifications together stay under one budget (the slowest reader is dropped, and told), and
a closed connection gives everything back. Over a real Unix socket; the last test on a real daemon."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.client import AsyncClient
from clawroomd.daemon.rpc import Session, serve_rpc
from clawroomd.daemon.rpc_session import PACE_BYTES, WRITE_CHUNK
from clawroomd.testing import DaemonProcess

LINE = 8000  # bytes of padding per notification, about a long message's event view


class Streams:
    """A dispatcher whose `stream` method sends `n` padded notifications, paced or not."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        self.sessions.append(session)

        async def stream() -> None:
            for i in range(params["n"]):
                if not await session.notify("room.event", {"i": i, "pad": "x" * LINE}, paced=params["paced"]):
                    return
            await trio.sleep_forever()

        session.start_soon(stream)
        return {"streaming": True}


async def start(nursery: trio.Nursery, tmp_path: Path, **options: Any) -> tuple[Path, Streams]:
    d = Streams()
    path = await nursery.start(
        lambda task_status: serve_rpc(tmp_path / "d.sock", d, task_status=task_status, **options)
    )
    return path, d


def silent(path: Path, n: int, *, paced: bool = True) -> socket.socket:
    """A subscriber that never reads (and asks the kernel to buffer as little as it will for it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(path))
    request = {"jsonrpc": "2.0", "id": 1, "method": "stream", "params": {"n": n, "paced": paced}}
    s.sendall(json.dumps(request).encode() + b"\n")
    return s


async def settle() -> None:
    await trio.sleep(0.5)


async def test_a_paced_stream_holds_a_cursor_not_a_copy(tmp_path: Path, nursery: trio.Nursery) -> None:
    path, d = await start(nursery, tmp_path)
    socks = [silent(path, 1000) for _ in range(10)]  # 8 MB each if copied
    await settle()
    held = max(s._queued for s in d.sessions)
    assert held <= PACE_BYTES + WRITE_CHUNK + 2 * LINE
    assert d.sessions[0].budget.used <= 10 * (PACE_BYTES + WRITE_CHUNK + 2 * LINE)
    # a reader on the same server still gets every notification, in order
    async with AsyncClient(path) as c:
        await c.call("stream", n=300, paced=True)
        got = []
        async for note in c.notifications():
            got.append(note["params"]["i"])
            if len(got) == 300:
                break
    assert got == list(range(300))
    for s in socks:
        s.close()


async def test_past_the_budget_the_slowest_reader_is_dropped_and_told(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    budget = 4 * (PACE_BYTES + WRITE_CHUNK)
    path, d = await start(nursery, tmp_path, notify_budget=budget)
    socks = [silent(path, 1000) for _ in range(10)]
    await settle()
    live = [s for s in d.sessions if not s.dropped]
    assert d.sessions[0].budget.used <= budget
    assert 0 < len(live) < 10  # some were dropped to stay under it, not all
    # a client that reads is never the slowest: it keeps its stream while silent ones go
    async with AsyncClient(path) as c:
        await c.call("stream", n=200, paced=True)
        got = 0
        async for _ in c.notifications():
            got += 1
            if got == 200:
                break
    assert got == 200
    for s in socks:
        s.close()


async def test_a_dropped_reader_gets_a_too_slow_error_line(tmp_path: Path, nursery: trio.Nursery) -> None:
    path, d = await start(nursery, tmp_path, max_outgoing=100_000)
    s = silent(path, 1000, paced=False)  # unpaced: its queue passes the per-connection cap
    with trio.fail_after(5):
        while not (d.sessions and d.sessions[0].dropped):
            await trio.sleep(0.01)
    s.setblocking(False)
    data = b""
    with trio.fail_after(5):
        while True:
            try:
                chunk = s.recv(1 << 20)
            except BlockingIOError:
                await trio.sleep(0.005)
                continue
            if not chunk:
                break
            data += chunk
    last = json.loads(data.splitlines()[-1])
    assert last["id"] is None and last["error"]["data"]["error"] == "too_slow"
    assert "notifications unread" in last["error"]["message"]
    s.close()


async def test_closing_gives_everything_back(tmp_path: Path, nursery: trio.Nursery) -> None:
    path, d = await start(nursery, tmp_path)
    socks = [silent(path, 1000) for _ in range(20)]
    await settle()
    budget = d.sessions[0].budget
    assert budget.used > 0 and len(budget.sessions) == 20
    for s in socks:
        s.close()
    with trio.fail_after(5):
        while budget.sessions:
            await trio.sleep(0.01)
    assert budget.used == 0
    assert all(s.closed and s._queued == 0 and not s._queue for s in d.sessions)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_silent_watchers_on_a_big_transcript_cost_little(tmp_path: Path) -> None:
    """100 room.watch subscribers that never read, on a ~1.5 MB transcript: each used to queue its own
    JSON copy of the whole transcript (about 150 MB here; 1.46 GB for 300 on 5 MB)."""
    host = DaemonProcess(tmp_path / "host", name="host").start()
    guest = DaemonProcess(tmp_path / "guest", name="guest").start()
    socks: list[socket.socket] = []
    try:
        created = host.call("room.create", topic="big", fields=["price"], max_turns=1000)
        room_id = created["room_id"]
        guest.call("room.join", join_url=created["join_url"])
        with host.client() as h, guest.client() as g:
            for i in range(180):
                c = (h, g)[i % 2]
                while not c.call("room.status", room_id=room_id)["your_turn"]:
                    time.sleep(0.002)
                c.call("room.send", room_id=room_id, text="y" * 8000)
        assert host.proc is not None
        before = _rss_mb(host.proc.pid)
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "room.watch", "params": {"room_id": room_id}})
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(str(host.socket))
            s.sendall(request.encode() + b"\n")
            socks.append(s)
        time.sleep(3)
        grew = _rss_mb(host.proc.pid) - before
        assert grew < 40, f"the host grew {grew:.0f} MB for 100 silent watchers"
        # a watcher that reads gets the whole room, in order, on the same daemon
        with host.client(timeout=30) as c:
            c.call("room.watch", room_id=room_id)
            seqs = []
            for note in c.notifications(timeout=10):
                if note["method"] == "room.event":
                    seqs.append(note["params"]["event"]["seq"])
                    if len(seqs) == 182:
                        break
        assert seqs == list(range(182))
    finally:
        for s in socks:
            s.close()
        host.stop()
        guest.stop()
