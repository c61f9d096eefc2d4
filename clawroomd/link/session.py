"""Bringing a WebSocket up to an authenticated PeerConnection, as initiator (guest) or responder (host).

Both take an already-open WebSocket, so tests can run them over memory streams. On any failure the
WebSocket is closed (with the error's close code when it is the peer's fault) before the error is raised,
and no application frame has been read or delivered.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ..core.channel import SecureChannel
from ..core.errors import CLOSE_HANDSHAKE, CLOSE_MALFORMED, CLOSE_TIMEOUT, RemoteProtocolError
from ..core.identity import Identity
from ..core.invites import Presented
from .connection import PeerConnection, close_reason, close_ws, closed_from
from .errors import DialFailed

HANDSHAKE_TIMEOUT = 10.0

# The daemon's decision on a proven peer: return to admit, raise RemoteProtocolError to refuse.
Authorize = Callable[[bytes, Presented | None], Awaitable[None]]


async def _receive(ws: WebSocketConnection) -> bytes:
    try:
        message = await ws.get_message()
    except ConnectionClosed as exc:
        raise closed_from(exc, by_peer=True) from None
    if not isinstance(message, bytes):
        raise RemoteProtocolError("malformed", "text WebSocket message", CLOSE_MALFORMED)
    return message


async def _send(ws: WebSocketConnection, data: bytes) -> None:
    try:
        await ws.send_message(data)
    except ConnectionClosed as exc:
        raise closed_from(exc, by_peer=True) from None


async def _handshake(ws: WebSocketConnection, channel: SecureChannel) -> None:
    while not channel.complete:
        if channel.our_turn():
            await _send(ws, channel.write_message())
        else:
            channel.read_message(await _receive(ws))


async def _guarded(
    ws: WebSocketConnection, timeout: float, body: Callable[[], Awaitable[PeerConnection]]
) -> PeerConnection:
    try:
        with trio.fail_after(timeout):
            return await body()
    except RemoteProtocolError as exc:
        await close_ws(ws, exc.close_code, close_reason(exc.code, exc.message))
        raise
    except trio.TooSlowError:
        await close_ws(ws, CLOSE_TIMEOUT, close_reason("handshake_timeout", "the handshake took too long"))
        raise DialFailed(f"the secure handshake did not finish within {timeout:g} s") from None
    except BaseException:
        await close_ws(ws, CLOSE_HANDSHAKE, "")
        raise


async def connect_peer(
    ws: WebSocketConnection,
    *,
    identity: Identity,
    static_private: bytes,
    expected_peer_id: str | None,
    invite: Presented | None = None,
    timeout: float = HANDSHAKE_TIMEOUT,
    **conn_options: Any,
) -> PeerConnection:
    """Initiator: run XX, pin the host, present the invite, and wait for the host's 'accepted'.

    Raises RemoteProtocolError (the host misbehaved, e.g. wrong_peer), LinkClosed (the host refused us:
    see its error_code, e.g. bad_invite) or DialFailed (timeout).
    """

    async def body() -> PeerConnection:
        channel = SecureChannel(
            initiator=True,
            identity=identity,
            static_private=static_private,
            ephemeral_private=os.urandom(32),
            expected_peer_id=expected_peer_id,
            invite=invite,
        )
        await _handshake(ws, channel)
        conn = PeerConnection(ws, channel, **conn_options)
        conn.check_accepted(await _receive(ws))
        return conn

    return await _guarded(ws, timeout, body)


async def accept_peer(
    ws: WebSocketConnection,
    *,
    identity: Identity,
    static_private: bytes,
    authorize: Authorize,
    timeout: float = HANDSHAKE_TIMEOUT,
    **conn_options: Any,
) -> PeerConnection:
    """Responder: run XX, learn the guest's identity and invite, ask `authorize`, then send 'accepted'.

    `authorize` runs after the guest's identity is proven and before any application frame is read;
    raising RemoteProtocolError from it closes the connection with that error's close code.
    """

    async def body() -> PeerConnection:
        channel = SecureChannel(
            initiator=False,
            identity=identity,
            static_private=static_private,
            ephemeral_private=os.urandom(32),
        )
        await _handshake(ws, channel)
        await authorize(channel.peer_public_key, channel.peer_invite)
        conn = PeerConnection(ws, channel, **conn_options)
        await conn.send_accepted()
        return conn

    return await _guarded(ws, timeout, body)
