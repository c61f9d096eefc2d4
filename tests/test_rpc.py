"""The local-API server over a real Unix socket: framing, errors, limits, notifications, peer uid."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.client import ApiError as ClientApiError
from clawroomd.client import AsyncClient, Client, ConnectionLost, DaemonNotRunning
from clawroomd.daemon.errors import ERROR_CODES, ApiError
from clawroomd.daemon.rpc import Session, SocketSetupError, serve_rpc


class Dispatcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[Session] = []

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        self.seen.append((method, params))
        match method:
            case "echo":
                return {"params": params, "uid": session.uid}
            case "fail":
                raise ApiError("unknown_room", "no room cr_00; list rooms with `clawroom list`", {"room_id": "cr_00"})
            case "boom":
                raise RuntimeError("secret internals")
            case "bad_result":
                return {"x": object()}
            case "watch":
                session.on_close(lambda: self.closed.append(session))

                async def stream(n: int) -> None:
                    for i in range(n):
                        if not await session.notify("room.event", {"i": i, "pad": "x" * params.get("pad", 0)}):
                            return
                    await trio.sleep_forever()

                session.start_soon(stream, params.get("n", 3))
                return {"watching": True}
            case _:
                raise ApiError("method_not_found", f"unknown method {method!r}")


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery):
    dispatcher = Dispatcher()
    path = await nursery.start(serve_rpc, tmp_path / "run" / "d.sock", dispatcher)
    return path, dispatcher


async def raw_lines(stream: trio.SocketStream, n: int) -> list[dict[str, Any]]:
    buf = b""
    with trio.fail_after(5):
        while buf.count(b"\n") < n:
            data = await stream.receive_some(65536)
            if not data:
                break
            buf += data
    return [json.loads(line) for line in buf.splitlines()]


async def test_good_call_and_unknown_method(server: tuple[Path, Dispatcher]) -> None:
    path, _ = server
    async with AsyncClient(path) as c:
        assert await c.call("echo", a=1, b=[2]) == {"params": {"a": 1, "b": [2]}, "uid": os.getuid()}
        with pytest.raises(ClientApiError) as ei:
            await c.call("nope")
        assert (ei.value.code, ei.value.rpc_code) == ("method_not_found", -32601)
        with pytest.raises(ClientApiError) as ei:
            await c.call("fail")
        assert ei.value.code == "unknown_room" and ei.value.rpc_code == ERROR_CODES["unknown_room"]
        assert ei.value.data == {"room_id": "cr_00"} and "clawroom list" in ei.value.message


async def test_socket_and_folder_are_private(server: tuple[Path, Dispatcher]) -> None:
    path, _ = server
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_malformed_json_then_good_call_same_connection(server: tuple[Path, Dispatcher]) -> None:
    path, _ = server
    async with await trio.open_unix_socket(str(path)) as s:
        await s.send_all(b'{"jsonrpc": "2.0", "id": 1, "method": \n')
        await s.send_all(b"\xff\xfe\n")
        await s.send_all(b'{"jsonrpc":"2.0","id":2,"method":"echo","params":{"x":NaN}}\n')
        await s.send_all(b'\n   \n{"jsonrpc":"2.0","id":3,"method":"echo","params":{"ok":true}}\n')
        lines = await raw_lines(s, 4)
    assert [m["error"]["code"] for m in lines[:3]] == [-32700] * 3
    assert all(m["id"] is None and m["error"]["data"]["error"] == "parse_error" for m in lines[:3])
    assert lines[3] == {"jsonrpc": "2.0", "id": 3, "result": {"params": {"ok": True}, "uid": os.getuid()}}


@pytest.mark.parametrize(
    ("request_obj", "code", "error"),
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "echo"}], -32600, "invalid_request"),  # batch
        ([], -32600, "invalid_request"),
        (5, -32600, "invalid_request"),
        ({"id": 1, "method": "echo"}, -32600, "invalid_request"),  # no "jsonrpc"
        ({"jsonrpc": "2.0", "id": 1}, -32600, "invalid_request"),  # no method
        ({"jsonrpc": "2.0", "id": 1.5, "method": "echo"}, -32600, "invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [1]}, -32602, "invalid_params"),
        ({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": "x"}, -32600, "invalid_request"),
        ({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}, -32601, "method_not_found"),
        ({"jsonrpc": "2.0", "id": 1, "method": "boom"}, -32603, "internal"),
        ({"jsonrpc": "2.0", "id": 1, "method": "bad_result"}, -32603, "internal"),
    ],
)
async def test_invalid_requests(
    server: tuple[Path, Dispatcher], request_obj: Any, code: int, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = server
    async with await trio.open_unix_socket(str(path)) as s:
        await s.send_all(json.dumps(request_obj).encode() + b"\n")
        await s.send_all(b'{"jsonrpc":"2.0","id":"after","method":"echo"}\n')
        first, after = await raw_lines(s, 2)
    assert first["error"]["code"] == code and first["error"]["data"]["error"] == error
    assert "secret internals" not in json.dumps(first)  # tracebacks go to the log only
    assert after["id"] == "after" and after["result"]["params"] == {}


async def test_internal_error_is_logged(server: tuple[Path, Dispatcher], caplog: pytest.LogCaptureFixture) -> None:
    path, _ = server
    async with AsyncClient(path) as c:
        with pytest.raises(ClientApiError) as ei:
            await c.call("boom")
    assert ei.value.code == "internal" and "secret" not in ei.value.message
    assert "secret internals" in caplog.text


async def test_params_null_and_empty_list_become_empty_dict(server: tuple[Path, Dispatcher]) -> None:
    path, _ = server
    async with await trio.open_unix_socket(str(path)) as s:
        await s.send_all(b'{"jsonrpc":"2.0","id":1,"method":"echo","params":null}\n')
        await s.send_all(b'{"jsonrpc":"2.0","id":2,"method":"echo","params":[]}\n')
        lines = await raw_lines(s, 2)
    assert [m["result"]["params"] for m in lines] == [{}, {}]


async def test_oversized_request_closes_only_that_connection(tmp_path: Path, nursery: trio.Nursery) -> None:
    path = await nursery.start(lambda task_status: serve_rpc(tmp_path / "d.sock", Dispatcher(), max_request=1000,
                                                             task_status=task_status))  # fmt: skip

    async def send(s: trio.SocketStream, data: bytes) -> None:
        with contextlib.suppress(trio.BrokenResourceError):  # the daemon stops reading past the limit
            await s.send_all(data)

    async with await trio.open_unix_socket(str(path)) as s, trio.open_nursery() as n:
        n.start_soon(send, s, b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":"' + b"a" * (4 << 20))
        lines = await raw_lines(s, 2)
    assert len(lines) == 1
    err = lines[0]["error"]
    assert err["code"] == -32600 and err["data"] == {"error": "limit_exceeded", "max_request": 1000}
    assert "1000 bytes" in err["message"]
    async with await trio.open_unix_socket(str(path)) as s:  # a complete line just over the limit
        await s.send_all(b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":"' + b"a" * 1000 + b'"}}\n')
        assert [m["error"]["data"]["error"] for m in await raw_lines(s, 2)] == ["limit_exceeded"]
    async with AsyncClient(path) as c:  # the daemon is fine
        assert (await c.call("echo", y=1))["params"] == {"y": 1}


async def test_notifications_stream_and_requests_without_id_get_no_reply(server: tuple[Path, Dispatcher]) -> None:
    path, d = server
    async with AsyncClient(path) as c:
        await c.notify("echo", quiet=True)
        assert await c.call("watch", n=3) == {"watching": True}
        assert (await c.call("echo"))["params"] == {}  # the subscription does not block the connection
        got = []
        with trio.fail_after(5):
            async for note in c.notifications():
                got.append(note)
                if len(got) == 3:
                    break
        assert got == [{"method": "room.event", "params": {"i": i, "pad": ""}} for i in range(3)]
    assert ("echo", {"quiet": True}) in d.seen
    with trio.fail_after(5):
        while not d.closed:  # the subscription ended with the connection
            await trio.sleep(0.01)


async def test_slow_subscriber_is_disconnected(tmp_path: Path, nursery: trio.Nursery) -> None:
    d = Dispatcher()
    path = await nursery.start(
        lambda task_status: serve_rpc(tmp_path / "d.sock", d, max_outgoing=50_000, task_status=task_status)
    )
    async with await trio.open_unix_socket(str(path)) as s:
        await s.send_all(b'{"jsonrpc":"2.0","id":1,"method":"watch","params":{"n":100000,"pad":1000}}\n')
        with trio.fail_after(5):
            while not d.closed:  # never reading: the kernel buffers fill, then the daemon's queue
                await trio.sleep(0.01)
        total = 0
        with trio.fail_after(5):
            while data := await s.receive_some(1 << 20):
                total += len(data)
    assert total < 100_000 * 1000  # it stopped well short of everything
    async with AsyncClient(path) as c:
        assert (await c.call("echo"))["params"] == {}


async def test_dropping_a_slow_subscriber_is_not_a_crash(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """The drop closes the session under the read loop: that used to end in UnboundLocalError (`linger`)."""
    d = Dispatcher()
    path = await nursery.start(
        lambda task_status: serve_rpc(tmp_path / "d.sock", d, max_outgoing=50_000, task_status=task_status)
    )
    async with await trio.open_unix_socket(str(path)) as s:
        await s.send_all(b'{"jsonrpc":"2.0","id":1,"method":"watch","params":{"n":100000,"pad":1000}}\n')
        with trio.fail_after(5):
            while not d.closed:
                await trio.sleep(0.01)
        with trio.fail_after(5):
            while await s.receive_some(1 << 20):
                pass
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]


async def test_sync_client(server: tuple[Path, Dispatcher], tmp_path: Path) -> None:
    path, _ = server

    def work() -> tuple[Any, str, list[dict[str, Any]]]:
        with Client(path, timeout=5) as c:
            result = c.call("echo", method="m")  # a param named "method" is fine
            try:
                c.call("fail")
            except ClientApiError as e:
                code = e.code
            c.call("watch", n=2)
            notes = list(c.notifications(timeout=0.2))
        return result, code, notes

    result, code, notes = await trio.to_thread.run_sync(work)
    assert result["params"] == {"method": "m"} and code == "unknown_room"
    assert [n["params"]["i"] for n in notes] == [0, 1]
    with pytest.raises(DaemonNotRunning, match="not running"):
        Client(tmp_path / "nothing.sock")


async def test_refuses_unsafe_folder_and_live_socket(tmp_path: Path, nursery: trio.Nursery) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    with pytest.raises(SocketSetupError, match="chmod 700"):
        await serve_rpc(shared / "d.sock", Dispatcher())
    (tmp_path / "file").write_text("x")
    with pytest.raises(SocketSetupError, match="not a folder"):
        await serve_rpc(tmp_path / "file" / "d.sock", Dispatcher())
    priv = tmp_path / "priv"
    priv.mkdir(mode=0o700)
    (priv / "notasocket").write_text("x")
    with pytest.raises(SocketSetupError, match="not a socket"):
        await serve_rpc(priv / "notasocket", Dispatcher())
    # a stale socket file (nobody listening) is replaced; a live one is refused
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(priv / "d.sock"))
    stale.close()
    path = await nursery.start(serve_rpc, priv / "d.sock", Dispatcher())
    with pytest.raises(SocketSetupError, match="another daemon is answering"):
        await serve_rpc(priv / "d.sock", Dispatcher())
    async with AsyncClient(path) as c:
        assert (await c.call("echo"))["params"] == {}


async def test_socket_removed_on_exit(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        path = await nursery.start(serve_rpc, tmp_path / "d.sock", Dispatcher())
        assert path.exists()
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_async_client_sees_connection_loss(tmp_path: Path, nursery: trio.Nursery) -> None:
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[Path]) -> None:
        with scope:
            await serve_rpc(tmp_path / "d.sock", Dispatcher(), task_status=task_status)

    path = await nursery.start(run)
    async with AsyncClient(path) as c:
        await c.call("echo")
        scope.cancel()  # the daemon stops
        with trio.fail_after(5), pytest.raises(ConnectionLost):
            await c.call("echo")
        with pytest.raises(ConnectionLost):
            await c.call("echo")


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
async def test_other_uid_is_refused_by_peercred(nursery: trio.Nursery) -> None:
    # The socket normally lives in a 0700 folder with mode 0600, so another uid could not even connect
    # and we would only be testing file permissions. To prove the SO_PEERCRED check itself refuses
    # uid 65534, this test alone opens the folder (0711, outside pytest's 0700 tmp tree) and the
    # socket (0666) after the server has started.
    d = Dispatcher()
    base = Path(tempfile.mkdtemp(prefix="clawroom-peercred-", dir="/tmp"))
    try:
        path = await nursery.start(serve_rpc, base / "run" / "d.sock", d)
        os.chmod(base, 0o711)
        os.chmod(path.parent, 0o711)
        os.chmod(path, 0o666)
        script = (
            "import socket,sys,os;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);"
            "s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\\n');"
            "d=s.makefile('rb').read();print(os.getuid());sys.stdout.write(d.decode())"
        )
        cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-c", script]
        with trio.fail_after(20):
            proc = await trio.run_process([*cmd, str(path)], capture_stdout=True, capture_stderr=True, check=False)
        assert proc.returncode == 0, proc.stderr
        uid_line, *replies = proc.stdout.decode().splitlines()
        assert uid_line == "65534"
        assert len(replies) == 1  # one error line, then the daemon closed the connection
        reply = json.loads(replies[0])
        assert reply["id"] is None and reply["error"]["data"] == {"error": "permission_denied", "uid": 65534}
        assert reply["error"]["code"] == ERROR_CODES["permission_denied"]
        assert not d.seen  # the request never reached the dispatcher
        async with AsyncClient(path) as c:  # and the daemon is healthy for its owner
            assert (await c.call("echo"))["uid"] == os.getuid()
    finally:
        shutil.rmtree(base, ignore_errors=True)
