"""The host side: accept peers on a TCP port, authenticate and authorise them, hand each to `handler`."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, WebSocketServer, serve_websocket

from ..core.errors import RemoteProtocolError
from ..core.identity import Identity
from .connection import MAX_WS_MESSAGE, SHUTDOWN_CLOSE_S, PeerConnection
from .errors import DialFailed, LinkClosed
from .session import HANDSHAKE_TIMEOUT, Authorize, accept_peer

log = logging.getLogger("clawroomd.link")

RESOURCE = "/clawroom/1"
Handler = Callable[[PeerConnection], Awaitable[None]]


async def serve_peers(
    host: str,
    port: int,
    *,
    identity: Identity,
    static_private: bytes,
    authorize: Authorize,
    handler: Handler,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    **conn_options: Any,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_peers, ...)` returns the bound (host, port).

    Per connection: WebSocket upgrade, Noise XX as responder, `authorize(peer_public_key, invite)`,
    then `handler(conn)`; the connection is closed when the handler returns. A failure in one
    connection (the peer's or the handler's) is logged and never stops the listener.
    """

    async def on_request(request: WebSocketRequest) -> None:
        try:
            ws = await request.accept()
        except ConnectionClosed:
            return
        try:
            conn = await accept_peer(
                ws,
                identity=identity,
                static_private=static_private,
                authorize=authorize,
                timeout=handshake_timeout,
                **conn_options,
            )
        except RemoteProtocolError as exc:
            log.info("refused a peer: %s (%s)", exc.code, exc.message)
            return
        except (LinkClosed, DialFailed) as exc:
            log.info("peer handshake ended: %s", exc)
            return
        except Exception:
            log.exception("peer handshake failed")
            return
        await run_connection(conn, handler)

    async with trio.open_nursery() as nursery:
        server: WebSocketServer = await nursery.start(
            partial(
                serve_websocket,
                on_request,
                host,
                port,
                None,
                max_message_size=MAX_WS_MESSAGE,
                message_queue_size=4,
                connect_timeout=handshake_timeout,
                disconnect_timeout=2,
            )
        )
        endpoint = server.listeners[0]
        task_status.started((str(endpoint.address), endpoint.port))  # type: ignore[union-attr]


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
