"""Many local-API clients at once against a real daemon, and what a client says when it cannot connect."""

from __future__ import annotations

import errno
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from clawroomd import client as client_module
from clawroomd.client import AsyncClient, Client, ClientError, ConnectionLost, DaemonBusy, DaemonNotRunning
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
CLIENTS = 300


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("connect") / "d").start()
    yield d
    d.stop()


async def test_300_concurrent_async_clients_all_get_answers(daemon: DaemonProcess) -> None:
    outcomes: Counter[str] = Counter()

    async def one() -> None:
        try:
            async with AsyncClient(daemon.socket) as c:
                info = await c.call("daemon.info")
            outcomes["ok" if info["socket"] == str(daemon.socket) else "wrong answer"] += 1
        except ClientError as e:
            outcomes[f"{type(e).__name__}: {e}"] += 1

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(CLIENTS):
                nursery.start_soon(one)
    assert outcomes == {"ok": CLIENTS}


def test_the_daemon_queues_a_burst_of_connects(daemon: DaemonProcess) -> None:
    """Raw non-blocking connects with no retry at all: the listen backlog alone must hold the burst
    (at 64, about a third of 300 were refused with EAGAIN)."""
    socks, refused = [], 0
    try:
        for _ in range(CLIENTS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            try:
                s.connect(str(daemon.socket))
            except BlockingIOError as e:
                assert e.errno == errno.EAGAIN
                refused += 1
    finally:
        for s in socks:
            s.close()
    assert refused == 0
    assert daemon.call("daemon.info")["rooms"] == 0  # and it is still fine


@pytest.fixture
def full_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A socket whose owner never accepts, with its one-slot queue already taken."""
    monkeypatch.setattr(client_module, "CONNECT_RETRY_S", 0.3)
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            break
        fillers.append(s)
    yield path
    for s in fillers:
        s.close()
    listener.close()


async def test_a_full_accept_queue_is_reported_as_busy_not_as_a_closed_connection(full_queue: Path) -> None:
    with pytest.raises(DaemonBusy, match="not accepting connections"):
        async with AsyncClient(full_queue):
            pass
    with pytest.raises(DaemonBusy, match="not accepting connections"):
        await trio.to_thread.run_sync(lambda: Client(full_queue))


async def test_a_full_queue_that_drains_in_time_connects(tmp_path: Path) -> None:
    path = tmp_path / "slow.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listener.bind(str(path))
    listener.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.setblocking(False)
    filler.connect(str(path))  # the queue's one slot
    async with trio.open_nursery() as nursery:

        async def accept_later() -> None:
            await trio.sleep(0.3)
            for _ in range(2):
                conn, _ = await listener.accept()
                nursery.start_soon(answer, conn)

        async def answer(conn: trio.socket.SocketType) -> None:
            with conn:
                if await conn.recv(65536):
                    await conn.send(b'{"jsonrpc":"2.0","id":1,"result":"late"}\n')

        nursery.start_soon(accept_later)
        with trio.fail_after(10):
            async with AsyncClient(path) as c:
                assert await c.call("x") == "late"
        filler.close()  # its `answer` task sees EOF
    listener.close()


async def test_no_daemon_and_a_lost_connection_are_told_apart(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="not running") as err:
        async with AsyncClient(tmp_path / "nothing.sock"):
            pass
    assert not isinstance(err.value, DaemonBusy)
    path = tmp_path / "closes.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listener.bind(str(path))
    listener.listen(8)
    async with trio.open_nursery() as nursery:

        async def close_at_once() -> None:
            conn, _ = await listener.accept()
            conn.close()

        nursery.start_soon(close_at_once)
        with pytest.raises(ConnectionLost, match="closed the connection"):
            async with AsyncClient(path) as c:
                await c.call("x")  # raised as itself, not inside an ExceptionGroup
    listener.close()
