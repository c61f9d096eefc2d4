"""The guest side: dial a host, pin its identity, present the invite, and hold the connection open."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import HandshakeError, WebSocketConnection
from wsproto import ConnectionType, WSConnection

from ..core.errors import RemoteProtocolError
from ..core.identity import Identity
from ..core.invites import Presented
from .connection import CLOSE_TIMEOUT_S, MAX_WS_MESSAGE, SHUTDOWN_CLOSE_S, PeerConnection, start_ws_reader
from .errors import DialFailed, LinkClosed
from .listener import RESOURCE
from .session import connect_peer

DIAL_TIMEOUT = 10.0


@asynccontextmanager
async def dial_peer(
    addr: tuple[str, int],
    *,
    identity: Identity,
    static_private: bytes,
    expected_peer_id: str,
    invite: Presented | None = None,
    timeout: float = DIAL_TIMEOUT,
    **conn_options: Any,
) -> AsyncIterator[PeerConnection]:
    """`async with dial_peer(...) as conn:` — TCP connect, WebSocket upgrade, XX, invite, host's 'accepted'.

    All of that within `timeout` seconds. Raises DialFailed (unreachable, not a clawroom peer, timeout),
    RemoteProtocolError (the host failed to prove `expected_peer_id`, or misbehaved) or LinkClosed (the
    host refused us; `error_code` says why, e.g. bad_invite / invite_used / invite_expired).
    The connection is closed when the block exits.
    """
    host, port = addr
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            conn = await _open(
                nursery, host, port, identity, static_private, expected_peer_id, invite, timeout, conn_options
            )
        except (DialFailed, LinkClosed, RemoteProtocolError) as exc:
            # Raised outside the nursery, so callers see the error itself rather than an ExceptionGroup.
            failure = exc
            _wind_down(nursery)
        else:
            nursery.start_soon(conn.run)
            try:
                yield conn
            except Exception as exc:
                failure = exc
            finally:
                # Being cancelled (daemon shutdown) means the peer's close reply can no longer be read:
                # say goodbye but do not wait the full close timeout for an answer that cannot come.
                cancelled = trio.current_effective_deadline() == -math.inf
                with trio.CancelScope(shield=True):
                    await conn.aclose(timeout=SHUTDOWN_CLOSE_S if cancelled else None)
                _wind_down(nursery)
    if failure is not None:
        raise failure


def _wind_down(nursery: trio.Nursery) -> None:
    # Not cancel(): trio-websocket's reader closes the socket itself once it sees the host's TCP close,
    # and a cancelled reader would leak the socket. The deadline bounds a host that never closes.
    nursery.cancel_scope.deadline = min(nursery.cancel_scope.deadline, trio.current_time() + CLOSE_TIMEOUT_S)


async def _connect_websocket(nursery: trio.Nursery, host: str, port: int) -> WebSocketConnection:
    """trio-websocket's connect_websocket, minus a hang: it waits for the opening handshake forever when the
    peer drops TCP before answering the upgrade (seen when a host dies while we dial it). Here the upgrade
    also ends when the connection's reader does. (Uses the connection's private reader and handshake event,
    as connect_websocket itself does.)"""
    stream = await trio.open_tcp_stream(host, port)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    ws = WebSocketConnection(
        stream,
        WSConnection(ConnectionType.CLIENT),
        host=authority,
        path=RESOURCE,
        max_message_size=MAX_WS_MESSAGE,
        message_queue_size=4,
    )
    reader_done = start_ws_reader(nursery, ws)
    try:
        async with trio.open_nursery() as race:

            async def until(event: trio.Event) -> None:
                await event.wait()
                race.cancel_scope.cancel()

            race.start_soon(until, ws._open_handshake)
            race.start_soon(until, reader_done)
        if not ws._open_handshake.is_set():
            raise DialFailed(f"{host}:{port} closed the connection during the WebSocket upgrade")
    except BaseException:
        await trio.aclose_forcefully(stream)  # no half-open socket outlives a failed dial (or its timeout)
        raise
    return ws


async def _open(
    nursery: trio.Nursery,
    host: str,
    port: int,
    identity: Identity,
    static_private: bytes,
    expected_peer_id: str,
    invite: Presented | None,
    timeout: float,
    conn_options: dict[str, Any],
) -> PeerConnection:
    deadline = trio.current_time() + timeout
    try:
        with trio.fail_at(deadline):
            ws = await _connect_websocket(nursery, host, port)
    except trio.TooSlowError:
        raise DialFailed(f"{host}:{port} did not answer within {timeout:g} s") from None
    except (OSError, HandshakeError) as exc:
        raise DialFailed(f"could not open a peer link to {host}:{port}: {exc}") from None
    return await connect_peer(
        ws,
        identity=identity,
        static_private=static_private,
        expected_peer_id=expected_peer_id,
        invite=invite,
        timeout=max(deadline - trio.current_time(), 0.0),
        **conn_options,
    )
