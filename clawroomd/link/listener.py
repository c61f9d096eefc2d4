"""The host side: accept peers on a TCP port, authenticate and authorise them, hand each to `handler`.

What peers can hold here is bounded (see limits.py): pending handshakes in total and per source,
admitted links per identity, and all peer connections together within a share of the descriptor limit.
When descriptors run out anyway (accept() fails with EMFILE and the like) the listener pauses briefly
and says so in a rate-limited warning; the kernel keeps new connections queued meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto import ConnectionType, WSConnection

from ..core.errors import RemoteProtocolError
from ..core.identity import Identity
from .connection import MAX_WS_MESSAGE, SHUTDOWN_CLOSE_S, PeerConnection, start_ws_reader
from .errors import DialFailed, LinkClosed
from .limits import (
    ACCEPT_PAUSE_S,
    CAPACITY_ERRNOS,
    LinkTable,
    LogThrottle,
    PeerLimits,
    Pending,
    PendingTable,
    source_of,
)
from .session import HANDSHAKE_TIMEOUT, Authorize, accept_peer

log = logging.getLogger("clawroomd.link")

RESOURCE = "/clawroom/1"
Handler = Callable[[PeerConnection], Awaitable[None]]


class _Listener:
    def __init__(
        self,
        *,
        identity: Identity,
        static_private: bytes,
        authorize: Authorize,
        handler: Handler,
        limits: PeerLimits,
        conn_options: dict[str, Any],
    ) -> None:
        self.identity = identity
        self.static_private = static_private
        self.authorize = authorize
        self.handler = handler
        self.limits = limits
        self.conn_options = conn_options
        self.pending = PendingTable(limits)
        self.links = LinkTable(limits)
        self.held = 0  # peer sockets open: pending, admitted or closing
        self._freed = trio.Event()
        self.out_of_fds = LogThrottle(logging.WARNING, "cannot accept peer connections")
        self.full = LogThrottle(logging.WARNING, "peer connections at their cap; not accepting for now")
        self.failed = LogThrottle(logging.INFO, "peer handshakes that did not finish")

    async def accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            while self.held >= (cap := self.limits.connection_cap()):
                self.full.hit(f"{self.held} held, cap {cap}")
                self._freed = trio.Event()
                with trio.move_on_after(1.0):  # the cap follows the descriptor limit, which can change
                    await self._freed.wait()
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                self.out_of_fds.hit(f"{exc.strerror}; pausing {ACCEPT_PAUSE_S:g} s")
                await trio.sleep(ACCEPT_PAUSE_S)
                continue
            try:
                source = source_of(stream.socket.getpeername())
            except OSError:  # gone already
                stream.socket.close()
                continue
            cap = self.limits.connection_cap()
            pending = self.pending.add(source, min(self.limits.max_pending, max(cap // 2, 1)))
            if pending is None:
                stream.socket.close()  # at once: under a flood this path runs thousands of times a second
                continue
            self.held += 1
            nursery.start_soon(self.serve_one, stream, pending)

    async def serve_one(self, stream: trio.SocketStream, pending: Pending) -> None:
        try:
            async with trio.open_nursery() as ws_nursery:
                conn = await self._admit(stream, pending, ws_nursery)
                self.pending.remove(pending)
                if conn is not None:
                    self.links.add(conn, ws_nursery)
                    try:
                        await run_connection(conn, self.handler)
                    finally:
                        self.links.remove(conn)
                ws_nursery.cancel_scope.cancel()  # the WebSocket reader, and any replaced link's close
        finally:
            self.pending.remove(pending)
            await trio.aclose_forcefully(stream)
            self.held -= 1
            self._freed.set()

    async def _admit(
        self, stream: trio.SocketStream, pending: Pending, ws_nursery: trio.Nursery
    ) -> PeerConnection | None:
        """The WebSocket upgrade, Noise XX and authorisation, all within the pending slot's deadline;
        None if any of it failed, timed out, or the slot was taken back."""
        with pending.scope:
            ws = None
            with trio.move_on_at(pending.deadline):
                ws = await _accept_websocket(ws_nursery, stream)
            if ws is None:
                self.failed.hit("no WebSocket upgrade (in time)")
                return None
            try:
                return await accept_peer(
                    ws,
                    identity=self.identity,
                    static_private=self.static_private,
                    authorize=self.authorize,
                    timeout=max(pending.deadline - trio.current_time(), 0.0),
                    **self.conn_options,
                )
            except RemoteProtocolError as exc:
                self.failed.hit(f"refused: {exc.code} ({exc.message})")
            except (LinkClosed, DialFailed) as exc:
                self.failed.hit(str(exc))
            except Exception:
                log.exception("peer handshake failed")
        if pending.scope.cancelled_caught:
            self.failed.hit("closed to make room for others before the handshake finished")
        return None


async def _accept_websocket(nursery: trio.Nursery, stream: trio.SocketStream) -> WebSocketConnection | None:
    """The server half of the WebSocket upgrade; None when the peer closes or sends something else.
    (trio-websocket's own server would wait for a request forever once its reader has stopped; this
    races the two, like the dialer. It uses the connection's private reader and request, as
    trio-websocket's server does.)"""
    ws = WebSocketConnection(
        stream,
        WSConnection(ConnectionType.SERVER),
        max_message_size=MAX_WS_MESSAGE,
        message_queue_size=4,
    )
    reader_done = start_ws_reader(nursery, ws)
    requests: list[Any] = []
    async with trio.open_nursery() as race:

        async def request() -> None:
            requests.append(await ws._get_request())
            race.cancel_scope.cancel()

        async def until_reader_done() -> None:
            await reader_done.wait()
            race.cancel_scope.cancel()

        race.start_soon(request)
        race.start_soon(until_reader_done)
    if not requests:
        return None
    try:
        return await requests[0].accept()  # type: ignore[no-any-return]
    except ConnectionClosed:
        return None


async def serve_peers(
    host: str,
    port: int,
    *,
    identity: Identity,
    static_private: bytes,
    authorize: Authorize,
    handler: Handler,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    limits: PeerLimits | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    **conn_options: Any,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_peers, ...)` returns the bound (host, port).

    Per connection: WebSocket upgrade, Noise XX as responder, `authorize(peer_public_key, invite)`,
    then `handler(conn)`; the connection is closed when the handler returns. A failure in one
    connection (the peer's or the handler's) is logged and never stops the listener. `limits` bounds
    what peers can hold (default: PeerLimits with `handshake_timeout`).
    """
    state = _Listener(
        identity=identity,
        static_private=static_private,
        authorize=authorize,
        handler=handler,
        limits=limits or PeerLimits(handshake_timeout=handshake_timeout),
        conn_options=conn_options,
    )
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(state.accept_loop, listener, nursery)
            bound = listeners[0].socket.getsockname()
            task_status.started((str(bound[0]), int(bound[1])))
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)


async def run_connection(conn: PeerConnection, handler: Handler) -> None:
    """Run `conn`'s tasks around `handler(conn)`; close the connection when the handler is done."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.run)
            try:
                await handler(conn)
            finally:
                cancelled = trio.current_effective_deadline() == -math.inf  # shutting down: see dialer.py
                with trio.CancelScope(shield=True):
                    await conn.aclose(timeout=SHUTDOWN_CLOSE_S if cancelled else None)
                nursery.cancel_scope.cancel()
    except Exception:
        log.exception("peer handler for %s failed", conn.peer_peer_id)
