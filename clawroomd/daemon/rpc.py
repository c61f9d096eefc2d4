"""The local API server: JSON-RPC 2.0 over a Unix socket, one JSON object per line (trio).

Transport and auth
    ``serve_rpc(path, dispatcher)`` binds an AF_UNIX stream socket at `path`. Its folder is created 0700
    (an existing folder must be ours and not group/other-accessible, else SocketSetupError); a leftover
    socket file is removed only if nothing answers on it; the socket is chmod 0600. Every connection's
    peer uid is read with SO_PEERCRED and must equal the daemon's uid: anyone else gets one
    ``permission_denied`` error line and the connection is closed.

Framing
    One JSON-RPC object per line (``\\n``-terminated UTF-8). Blank lines are ignored. Batches (JSON
    arrays) are refused with ``invalid_request``: send one request per line. A line over `max_request`
    bytes gets an ``invalid_request`` error whose ``data.error`` is ``limit_exceeded``, then the
    connection is closed (the rest of that line cannot be skipped reliably). Malformed JSON gets a
    parse error; the connection stays usable.

Requests on one connection are handled one at a time, in order (responses come back in request order).
A dispatcher that starts a long-lived subscription returns its result at once and streams with
``session.notify`` from a task it starts with ``session.start_soon``; such tasks are cancelled when the
client disconnects. When a client shuts down its sending side (EOF), replies already queued are flushed
(for up to FLUSH_TIMEOUT seconds) and the connection closes, ending its subscriptions. What a connection
may leave unsent, per connection and for all of them together, is bounded: see ``rpc_session``.

Dispatcher interface: any object with ``async def handle(self, method: str, params: dict, session)``.
``params`` is always a dict (absent/null/[] become ``{}``, a non-empty array is invalid_params). The
return value (JSON-serialisable) is the result; raise ``ApiError`` for an error the caller can act on.
Any other exception is logged with its traceback and reported as ``internal`` without details.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import trio

from ..link.limits import ACCEPT_PAUSE_S, CAPACITY_ERRNOS, LogThrottle
from ..private_files import UnsafeFolder, ensure_private_dir
from .errors import INVALID_REQUEST, ApiError
from .rpc_session import DEFAULT_NOTIFY_BUDGET, MAX_OUTGOING, NotifyBudget, Session, encode_line, error_response

__all__ = [
    "FLUSH_TIMEOUT",
    "LISTEN_BACKLOG",
    "MAX_OUTGOING",
    "MAX_REQUEST",
    "Dispatcher",
    "Session",
    "SocketSetupError",
    "bind_unix_listener",
    "decode_line",
    "encode_line",
    "peer_credentials",
    "prepare_socket_dir",
    "serve_rpc",
]

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20  # bytes per request line
FLUSH_TIMEOUT = 5.0  # seconds to flush queued replies once a client has stopped sending
LINGER = 1.0  # seconds to drain a client's input after our last error line before closing
# Connections the kernel queues for us to accept (it caps this at net.core.somaxconn). At 64, a burst of a
# few hundred clients overflowed it and their connects failed with EAGAIN.
LISTEN_BACKLOG = 4096
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL


class SocketSetupError(Exception):
    """The socket or its folder cannot be used safely; the message says what to do."""


class Dispatcher(Protocol):
    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any: ...


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_line(line: bytes) -> Any:
    """Parse one line as strict JSON (no NaN/Infinity); raises ValueError on anything else."""
    try:
        return json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# ------------------------------------------------------------------------------------------ socket setup
def prepare_socket_dir(directory: Path) -> None:
    """Create `directory` 0700, or check that an existing one is ours and private (never chmod-ed)."""
    try:
        ensure_private_dir(directory, what="the socket folder")
    except UnsafeFolder as e:
        raise SocketSetupError(f"{e} (or choose another --socket)") from None


def _remove_stale_socket(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketSetupError(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SocketSetupError(f"cannot tell whether {path} is in use ({e.strerror}); remove it by hand") from e
    else:
        raise SocketSetupError(f"another daemon is answering on {path}; stop it or choose another --socket")
    finally:
        probe.close()
    log.info("removing stale socket %s", path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def bind_unix_listener(path: Path, *, backlog: int = LISTEN_BACKLOG) -> trio.SocketListener:
    """Bind and listen on `path` with the checks described in the module docstring."""
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise SocketSetupError(f"socket path {path} is too long for a Unix socket (max {_SUN_PATH_MAX} bytes)")
    prepare_socket_dir(path.parent)
    _remove_stale_socket(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def peer_credentials(stream: trio.SocketStream) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix stream socket."""
    raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


# ---------------------------------------------------------------------------------------------- server
async def _linger(stream: trio.SocketStream) -> None:
    """Half-close, then discard what the client still sends (briefly) before closing.

    Closing a Unix socket with unread input makes the client's next read fail with ECONNRESET, which
    can swallow the error line we just sent; a client that reads to EOF gets a clean end instead.
    """
    with trio.move_on_after(LINGER):
        await stream.send_eof()
        while await stream.receive_some(1 << 16):
            pass


class _Server:
    def __init__(self, dispatcher: Dispatcher, *, max_request: int, max_outgoing: int, notify_budget: int) -> None:
        self.dispatcher = dispatcher
        self.max_request = max_request
        self.max_outgoing = max_outgoing
        self.budget = NotifyBudget(notify_budget)

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await self._connection(stream)
        except Exception:
            log.exception("connection handler failed")

    async def _connection(self, stream: trio.SocketStream) -> None:
        pid, uid, gid = peer_credentials(stream)
        if uid != os.getuid():
            log.warning("refused uid %d (pid %d): only uid %d may connect", uid, pid, os.getuid())
            err = ApiError(
                "permission_denied",
                f"this clawroomd belongs to uid {os.getuid()}; uid {uid} may not use it",
                {"uid": uid},
            )
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                with trio.move_on_after(LINGER):
                    await stream.send_all(encode_line(error_response(None, err)))
                await _linger(stream)
            return
        async with trio.open_nursery() as nursery:
            session = Session(
                stream, nursery, uid=uid, gid=gid, pid=pid, max_outgoing=self.max_outgoing, budget=self.budget
            )
            log.debug("%r connected", session)
            nursery.start_soon(session.writer)
            linger = False  # stays False when the session is closed under us (a dropped slow watcher)
            try:
                linger = await self._read_loop(stream, session)
                await session.flush(FLUSH_TIMEOUT)
            finally:
                session.close()
        if linger:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await _linger(stream)
        log.debug("%r closed", session)

    async def _read_loop(self, stream: trio.SocketStream, session: Session) -> bool:
        """Read and handle requests until EOF; True if we stop early with input possibly unread."""
        buf = bytearray()
        searched = 0  # bytes of buf known to hold no newline: a long line is scanned once, not per read
        while True:
            nl = buf.find(b"\n", searched)
            if nl == -1:
                searched = len(buf)
                if len(buf) > self.max_request:
                    await self._too_large(session)
                    return True
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return False
                if not data:
                    if buf.strip():
                        await self._handle_line(bytes(buf), session)
                    return False
                buf += data
                continue
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            searched = 0
            if len(line) > self.max_request:
                await self._too_large(session)
                return True
            if line.strip():
                await self._handle_line(line, session)
                # One request per turn: a client with a backlog of cheap requests (one read can hold
                # thousands) must not keep every other connection and the peer link waiting meanwhile.
                await trio.lowlevel.checkpoint()
            if session.closed:
                return False

    async def _too_large(self, session: Session) -> None:
        log.warning("%r sent a request over %d bytes; closing that connection", session, self.max_request)
        err = ApiError(
            "limit_exceeded",
            f"request too large: the limit is {self.max_request} bytes per line; the connection will close",
            {"max_request": self.max_request},
            rpc_code=INVALID_REQUEST,
        )
        await session.reply(error_response(None, err))

    async def _handle_line(self, line: bytes, session: Session) -> None:
        try:
            msg = decode_line(line)
        except ValueError as e:
            err = ApiError("parse_error", f"parse error: the line is not valid JSON ({e})")
            await session.reply(error_response(None, err))
            return
        response = await self._handle_message(msg, session)
        if response is not None:
            await session.reply(response)

    async def _handle_message(self, msg: Any, session: Session) -> dict[str, Any] | bytes | None:
        if isinstance(msg, list):
            return error_response(
                None,
                ApiError("invalid_request", "batch requests are not supported: send one request object per line"),
            )
        if not isinstance(msg, dict):
            return error_response(None, ApiError("invalid_request", "a request must be a JSON object"))
        is_notification = "id" not in msg
        req_id = msg.get("id")
        if not (req_id is None or isinstance(req_id, str) or type(req_id) is int):
            return error_response(None, ApiError("invalid_request", '"id" must be a string, an integer or null'))
        method = msg.get("method")
        if msg.get("jsonrpc") != "2.0":
            return error_response(req_id, ApiError("invalid_request", 'a request needs "jsonrpc": "2.0"'))
        if not isinstance(method, str) or not method:
            return error_response(req_id, ApiError("invalid_request", 'a request needs a "method" string'))
        params = msg.get("params")
        try:
            if params is None or params == []:
                params = {}
            elif isinstance(params, list):
                raise ApiError("invalid_params", f"{method}: pass params by name (a JSON object), not a list")
            elif not isinstance(params, dict):
                raise ApiError("invalid_request", '"params" must be an object')
            if method.startswith("rpc."):
                raise ApiError("method_not_found", f"unknown method {method!r}")
            result = await self.dispatcher.handle(method, params, session)
            if is_notification:
                return None
            try:
                return encode_line({"jsonrpc": "2.0", "id": req_id, "result": result})
            except (TypeError, ValueError):
                log.exception("%s returned a result that is not JSON-serialisable", method)
                msg_ = "internal error: the daemon produced an invalid result; see its log"
                raise ApiError("internal", msg_) from None
        except ApiError as err:
            return None if is_notification else error_response(req_id, err)
        except Exception:
            log.exception("%s failed for %r", method, session)
            if is_notification:
                return None
            return error_response(
                req_id, ApiError("internal", f"internal error while handling {method}; see the daemon's log")
            )


async def _accept_loop(
    listener: trio.SocketListener, handler: Callable[[trio.SocketStream], Awaitable[None]], nursery: trio.Nursery
) -> None:
    """trio.serve_listeners, except that running out of descriptors (EMFILE and the like) pauses accepting
    briefly with a rate-limited warning instead of logging a traceback every 0.1 s."""
    out_of_fds = LogThrottle(logging.WARNING, "cannot accept local-API connections", logger=log)
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in CAPACITY_ERRNOS:
                raise
            out_of_fds.hit(f"{exc.strerror}; pausing {ACCEPT_PAUSE_S:g} s")
            await trio.sleep(ACCEPT_PAUSE_S)
            continue
        nursery.start_soon(_serve_one, stream, handler)


async def _serve_one(stream: trio.SocketStream, handler: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


async def serve_rpc(
    path: str | os.PathLike[str],
    dispatcher: Dispatcher,
    *,
    max_request: int = MAX_REQUEST,
    max_outgoing: int = MAX_OUTGOING,
    notify_budget: int = DEFAULT_NOTIFY_BUDGET,
    inherited: socket.socket | None = None,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the local API on the Unix socket `path` until cancelled; removes the socket file on exit.

    Use ``path = await nursery.start(serve_rpc, path, dispatcher)``: it returns once the socket is bound
    and listening. Raises SocketSetupError (before starting) if the socket cannot be used safely.

    `inherited`: a listening AF_UNIX socket from the supervisor (socket activation, see activation.py).
    It is served instead of binding `path`, and its file is left alone on exit: systemd owns it and
    keeps listening on it while we are stopped. The started value is then the inherited socket's path.
    """
    if inherited is not None:
        path = Path(os.fsdecode(inherited.getsockname()))
        inherited.listen(LISTEN_BACKLOG)  # on Linux this only raises the queue of a listening socket
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(inherited))
        ino = None  # not ours to remove
    else:
        path = Path(path).absolute()
        listener = await bind_unix_listener(path)
        ino = path.stat().st_ino
    server = _Server(dispatcher, max_request=max_request, max_outgoing=max_outgoing, notify_budget=notify_budget)
    try:
        log.info("listening on %s", path)
        async with listener, trio.open_nursery() as nursery:
            nursery.start_soon(_accept_loop, listener, server.handle_connection, nursery)
            task_status.started(path)
    finally:
        with contextlib.suppress(OSError):
            if ino is not None and path.stat().st_ino == ino:  # never remove a socket some later daemon bound
                path.unlink()
