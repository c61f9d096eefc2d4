"""Client of the clawroomd local API (JSON-RPC 2.0, one object per line, over a Unix socket).

Sync (no trio import; what the CLI uses)::

    with Client() as c:                       # socket from CLAWROOM_SOCKET or the default path
        info = c.call("daemon.info")
        c.call("room.watch", room_id="cr_...")
        for note in c.notifications(timeout=30):   # {"method": ..., "params": ...}
            ...

Async (trio)::

    async with AsyncClient() as c:
        info = await c.call("daemon.info")
        await c.call("room.watch", room_id="cr_...")
        async for note in c.notifications():
            ...

Errors: ``ApiError`` (the daemon answered with an error: ``.code`` is the stable string such as
``"unknown_room"``, ``.message`` a sentence for a person, ``.data`` the extra fields, ``.rpc_code`` the
JSON-RPC integer), ``DaemonNotRunning`` (nothing listens on the socket), its subclass ``DaemonBusy`` (the
daemon's queue of connections waiting to be accepted stayed full for CONNECT_RETRY_S: busy or stuck),
``ConnectionLost`` (the daemon closed a connection it had accepted), all subclasses of ``ClientError``.

Socket path: ``default_socket_path(state_dir)`` is the one rule, shared with the daemon:

* the default state dir (``$XDG_STATE_HOME/clawroom``, else ``~/.local/state/clawroom``) puts the socket
  at ``$XDG_RUNTIME_DIR/clawroom/clawroomd.sock``, or ``<state dir>/clawroomd.sock`` without
  ``XDG_RUNTIME_DIR``;
* any other state dir (``--state-dir``) puts it at ``<state dir>/clawroomd.sock``, so several daemons
  on one machine never share a socket path.

``resolve_socket_path`` adds the client's overrides: an explicit path, then ``$CLAWROOM_SOCKET``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import socket
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import trio

SOCKET_NAME = "clawroomd.sock"
MAX_LINE = 64 << 20  # refuse a reply line over 64 MiB rather than buffer without end
CONNECT_RETRY_S = 5.0  # how long a connect keeps retrying while the daemon's accept queue is full


# ----------------------------------------------------------------------------------------------- paths
def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/clawroom``, else ``~/.local/state/clawroom``."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or ""
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    root = Path(base) if base and os.path.isabs(base) else home / ".local" / "state"
    return root / "clawroom"


def default_socket_path(state_dir: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where the daemon for `state_dir` (None: the default one) listens; see the module docstring."""
    env = os.environ if env is None else env
    default = default_state_dir(env)
    if state_dir is not None and Path(state_dir).absolute() != default.absolute():
        return Path(state_dir).absolute() / SOCKET_NAME
    runtime = env.get("XDG_RUNTIME_DIR") or ""
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "clawroom" / SOCKET_NAME
    return default / SOCKET_NAME


def resolve_socket_path(
    socket_path: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The socket a client should use: `socket_path`, else ``$CLAWROOM_SOCKET``, else the default."""
    env = os.environ if env is None else env
    if socket_path is not None:
        return Path(socket_path)
    if env.get("CLAWROOM_SOCKET"):
        return Path(env["CLAWROOM_SOCKET"])
    return default_socket_path(state_dir, env)


# ---------------------------------------------------------------------------------------------- errors
class ClientError(Exception):
    """Base of everything this module raises."""


class DaemonNotRunning(ClientError):
    """Nothing accepts connections on the socket."""


class DaemonBusy(DaemonNotRunning):
    """The socket exists but its queue of connections waiting to be accepted stayed full (EAGAIN on
    connect) for CONNECT_RETRY_S: the daemon is overloaded or stuck. No connection was made."""


class ConnectionLost(ClientError):
    """The daemon closed the connection (or sent something that is not JSON-RPC)."""


class ApiError(ClientError):
    """An error answered by the daemon. Branch on ``code`` (stable string), show ``message``."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None, rpc_code: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}
        self.rpc_code = rpc_code

    @classmethod
    def from_error_object(cls, error: Any) -> ApiError:
        if not isinstance(error, dict):
            return cls("internal", f"malformed error from the daemon: {error!r}")
        raw_data = error.get("data")
        data: dict[str, Any] = dict(raw_data) if isinstance(raw_data, dict) else {}
        code = data.pop("error", None)
        raw_code = error.get("code")
        rpc_code: int = raw_code if isinstance(raw_code, int) else 0
        if not isinstance(code, str):
            code = {-32700: "parse_error", -32600: "invalid_request", -32601: "method_not_found",
                    -32602: "invalid_params"}.get(rpc_code, "internal")  # fmt: skip
        return cls(code, str(error.get("message", "")), data, rpc_code)

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r})"


def _not_running(path: Path, err: OSError) -> DaemonNotRunning:
    return DaemonNotRunning(
        f"clawroomd is not running (cannot connect to {path}: {err.strerror}); start it with `clawroomd`"
    )


def _busy(path: Path) -> DaemonBusy:
    return DaemonBusy(
        f"clawroomd at {path} is not accepting connections: its queue stayed full for {CONNECT_RETRY_S:g} s "
        "(too many clients at once, or the daemon is stuck); try again"
    )


class _Connecting:
    """One non-blocking connect attempt at a time on an AF_UNIX socket. A full accept queue answers EAGAIN
    at once (it is not EINPROGRESS: nothing is pending), and the same socket may simply try again; a
    client that took EAGAIN for "connected" would only find out at its first read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.delay = 0.002

    def attempt(self) -> bool:
        """True once connected; False to retry after `next_delay()`. Raises DaemonNotRunning or OSError."""
        try:
            self.sock.connect(str(self.path))
        except BlockingIOError as e:
            if e.errno != errno.EAGAIN:
                raise
            return False
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise _not_running(self.path, e) from None
        return True

    def next_delay(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, 0.1)
        return delay


def _encode(method: str, params: dict[str, Any], req_id: int | None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params:
        msg["params"] = params
    if req_id is not None:
        msg["id"] = req_id
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def _decode(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except ValueError:
        raise ConnectionLost(f"the daemon sent a line that is not JSON: {line[:200]!r}") from None
    if not isinstance(msg, dict):
        raise ConnectionLost(f"the daemon sent something that is not a JSON-RPC object: {line[:200]!r}")
    return msg


def _notification(msg: dict[str, Any]) -> dict[str, Any]:
    return {"method": msg["method"], "params": msg.get("params")}


# ------------------------------------------------------------------------------------------ following
class WatchCursor:
    """Where a follower of `room.watch` is: the rules that make it never skip nor repeat an event, shared by
    the sync `watch_events` and the `clawroom.aio` library (which owns its own connections).

    The daemon can find the room closed while it is still sending the events before it, and then sends
    room.closed without the rest: `closing` turns a transcript read after `seq` into the missing
    room.event notifications, so no event is ever missed.
    """

    def __init__(self, room_id: str, after: int = -1) -> None:
        self.room_id = room_id
        self.seq = after
        self.closed = False

    def take(self, note: dict[str, Any]) -> dict[str, Any] | None:
        """`note` to pass on (None: an event already seen). Check `is_close` first."""
        if note["method"] == "room.event":
            event_seq = (note.get("params") or {})["event"]["seq"]
            if event_seq <= self.seq:
                return None
            self.seq = event_seq
        return note

    @staticmethod
    def is_close(note: dict[str, Any]) -> bool:
        return bool(note["method"] == "room.closed")

    def closing(self, transcript: dict[str, Any], note: dict[str, Any]) -> list[dict[str, Any]]:
        """The notes to pass on for room.closed `note`, given ``room.transcript(after=self.seq)``."""
        notes = []
        for event in transcript["events"]:
            if event["seq"] > self.seq:
                self.seq = event["seq"]
                notes.append({"method": "room.event", "params": {"room_id": self.room_id, "event": event}})
        self.closed = True
        return [*notes, note]


def watch_events(c: Client, room_id: str, after: int = -1, *, silence: float | None = None) -> Iterator[dict[str, Any]]:
    """Subscribe with room.watch on `c` and yield its notifications until room.closed (included), with
    every event after `after` exactly once (see WatchCursor). Raises TimeoutError after `silence` seconds
    without a notification (None: wait for ever)."""
    cursor = WatchCursor(room_id, after)
    c.call("room.watch", room_id=room_id, after=after)
    for note in c.notifications(timeout=silence):
        if cursor.is_close(note):
            yield from cursor.closing(c.call("room.transcript", room_id=room_id, after=cursor.seq), note)
            return
        if (passed := cursor.take(note)) is not None:
            yield passed
    c.call("daemon.info")  # notifications() ended: a lost connection raises here, else it was the silence
    raise TimeoutError(f"nothing happened in room {room_id} for {silence:g} s")


# ------------------------------------------------------------------------------------------- sync client
class Client:
    """Blocking client; one connection, calls one at a time. Not thread-safe.

    `timeout` (seconds, None = wait forever) bounds each call's wait for its answer.
    Notifications that arrive during a call are kept for ``notifications()``.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.socket_path = resolve_socket_path(socket_path, state_dir)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._buf = bytearray()
        self._notes: deque[dict[str, Any]] = deque()
        connecting = _Connecting(self.socket_path)
        self._sock = connecting.sock
        try:
            deadline = time.monotonic() + CONNECT_RETRY_S
            while not connecting.attempt():
                if time.monotonic() >= deadline:
                    raise _busy(self.socket_path)
                time.sleep(connecting.next_delay())
            self._sock.setblocking(True)
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_message(self, timeout: float | None) -> dict[str, Any]:
        self._sock.settimeout(timeout)
        while (nl := self._buf.find(b"\n")) == -1:
            if len(self._buf) > MAX_LINE:
                raise ConnectionLost("the daemon sent a line over the client's size limit")
            try:
                data = self._sock.recv(1 << 16)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionLost(f"the daemon closed the connection ({e.strerror})") from None
            if not data:
                raise ConnectionLost("the daemon closed the connection")
            self._buf += data
        line = bytes(self._buf[:nl])
        del self._buf[: nl + 1]
        return _decode(line)

    def call(self, method: str, /, **params: Any) -> Any:
        """Call `method` with named params; returns the result or raises ApiError."""
        req_id = next(self._ids)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # the daemon may have closed after an error line; it is read below
            self._sock.sendall(_encode(method, params, req_id))
        while True:
            try:
                msg = self._read_message(self.timeout)
            except TimeoutError:
                raise TimeoutError(f"no answer to {method} within {self.timeout} s") from None
            if "id" not in msg and "method" in msg:
                self._notes.append(_notification(msg))
                continue
            if msg.get("id") not in (req_id, None):
                continue  # an answer to an earlier call that timed out
            if "error" in msg:
                raise ApiError.from_error_object(msg["error"])
            if msg.get("id") is None:
                raise ConnectionLost(f"unexpected message from the daemon: {msg!r}")
            return msg.get("result")

    def notify(self, method: str, /, **params: Any) -> None:
        """Send a JSON-RPC notification (no answer)."""
        self._sock.sendall(_encode(method, params, None))

    def notifications(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield notifications ``{"method", "params"}`` as they come; stops after `timeout` s of silence
        (None: never) or when the daemon closes the connection."""
        while True:
            while self._notes:
                yield self._notes.popleft()
            try:
                msg = self._read_message(timeout)
            except (TimeoutError, ConnectionLost):
                return
            if "id" not in msg and "method" in msg:
                self._notes.append(_notification(msg))
            elif "error" in msg and msg.get("id") is None:
                raise ApiError.from_error_object(msg["error"])


# ------------------------------------------------------------------------------------------ async client
class AsyncClient:
    """trio client: ``async with AsyncClient(path) as c``. Calls may run concurrently from several tasks
    (the daemon still answers them in order). Notifications are buffered until read with
    ``notifications()``, so nothing is lost between a subscribe call and the loop."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.socket_path = resolve_socket_path(socket_path, state_dir)
        self._ids = itertools.count(1)
        self._waiting: dict[int, Any] = {}  # id -> trio.MemorySendChannel for the answer
        self._closed_error: ClientError | None = None

    async def __aenter__(self) -> AsyncClient:
        import trio

        connecting = _Connecting(self.socket_path)
        try:
            deadline = trio.current_time() + CONNECT_RETRY_S
            while not connecting.attempt():
                if trio.current_time() >= deadline:
                    raise _busy(self.socket_path)
                await trio.sleep(connecting.next_delay())
        except BaseException:
            connecting.sock.close()
            raise
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(connecting.sock))
        self._send_lock = trio.Lock()
        self._note_send, self._note_recv = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._nursery.start_soon(self._reader)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._nursery.cancel_scope.cancel()
        try:
            # Not handed the body's exception: the caller's ApiError must reach it as itself, not wrapped
            # in an ExceptionGroup by the nursery that only holds our reader.
            await self._nursery_cm.__aexit__(None, None, None)
        finally:
            await self._stream.aclose()

    async def aclose(self) -> None:
        await self.__aexit__(None, None, None)

    def _fail_all(self, err: ClientError) -> None:
        self._closed_error = err
        for ch in self._waiting.values():
            ch.send_nowait(err)
        self._waiting.clear()
        self._note_send.close()

    async def _reader(self) -> None:
        import trio

        buf = bytearray()
        try:
            while True:
                nl = buf.find(b"\n")
                if nl == -1:
                    if len(buf) > MAX_LINE:
                        raise ConnectionLost("the daemon sent a line over the client's size limit")
                    try:
                        data = await self._stream.receive_some(1 << 16)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    if not data:
                        raise ConnectionLost("the daemon closed the connection")
                    buf += data
                    continue
                msg = _decode(bytes(buf[:nl]))
                del buf[: nl + 1]
                if "id" not in msg and "method" in msg:
                    self._note_send.send_nowait(_notification(msg))
                elif msg.get("id") is None:
                    # a connection-level error (refused uid, oversized line): fail every pending call
                    raise ApiError.from_error_object(msg.get("error"))
                elif (ch := self._waiting.pop(msg["id"], None)) is not None:
                    ch.send_nowait(msg)
        except ClientError as err:
            self._fail_all(err)
        finally:
            if self._closed_error is None:  # cancelled: the client is closing
                self._fail_all(ConnectionLost("the client connection was closed"))

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call `method` with named params; returns the result or raises ApiError."""
        import trio

        if self._closed_error is not None:
            raise self._closed_error
        req_id = next(self._ids)
        send, recv = trio.open_memory_channel[Any](1)
        self._waiting[req_id] = send
        try:
            async with self._send_lock:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    # if the daemon closed, the reader reports why
                    await self._stream.send_all(_encode(method, params, req_id))
            answer = await recv.receive()
        finally:
            self._waiting.pop(req_id, None)
        if isinstance(answer, ClientError):
            raise answer
        if "error" in answer:
            raise ApiError.from_error_object(answer["error"])
        return answer.get("result")

    async def notify(self, method: str, /, **params: Any) -> None:
        async with self._send_lock:
            await self._stream.send_all(_encode(method, params, None))

    def notifications(self) -> trio.MemoryReceiveChannel[dict[str, Any]]:
        """The notifications ``{"method", "params"}`` as a channel: ``async for note in
        c.notifications()``, or ``await c.notifications().receive()``; ends when the connection closes.
        (A channel rather than an async generator, so breaking out of the loop is safe under trio.)"""
        return self._note_recv

    @property
    def stream(self) -> trio.SocketStream:
        return self._stream
