"""One authenticated peer connection: encrypted CBOR maps over a WebSocket, with keepalive.

Each WebSocket binary message is one Noise transport message. Sending encrypts and writes under one
lock, so wire order is nonce order. One reader task decrypts in arrival order into a bounded channel: a
consumer that stops reading stops the reader, which stops reading the socket, which pushes back on the
peer (TCP flow control). The reader never sends, so two busy peers cannot deadlock on each other.

Keepalive: each side sends a heartbeat when it has sent nothing for `keepalive_interval`, and closes
with CLOSE_TIMEOUT when nothing at all has arrived for `dead_after`; a dead peer is therefore noticed
within `dead_after` of its last frame (plus at most `close_timeout` to tear the socket down).
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ..core.channel import SecureChannel, Transport
from ..core.errors import CLOSE_MALFORMED, CLOSE_PROTOCOL, CLOSE_TIMEOUT, RemoteProtocolError
from ..core.invites import Presented
from . import frames
from .errors import LinkClosed

log = logging.getLogger("clawroomd.link")

MAX_WS_MESSAGE = 65535
KEEPALIVE_INTERVAL = 10.0
DEAD_AFTER = 30.0
CLOSE_TIMEOUT_S = 2.0
SHUTDOWN_CLOSE_S = 0.2  # when we are being cancelled the peer's close reply cannot be read anyway
QUEUE_SIZE = 16
NORMAL_CLOSE = 1000


def close_reason(code: str, message: str) -> str:
    """A WebSocket close reason (≤ 123 bytes of UTF-8) that starts with our stable error code."""
    text = f"{code}: {message}"
    raw = text.encode("utf-8")[:123]
    return raw.decode("utf-8", errors="ignore")


async def close_ws(ws: WebSocketConnection, code: int, reason: str, timeout: float = CLOSE_TIMEOUT_S) -> None:
    # trio-websocket waits for the peer's close reply without a limit; a dead peer would hang us.
    with trio.move_on_after(timeout):
        await ws.aclose(code, reason)
    # aclose() returns early when the peer closed first, and trio-websocket's reader does not close the
    # socket on EOF either: close the TCP stream ourselves (idempotent) so no socket outlives the link.
    await ws._close_stream()


def closed_from(exc: ConnectionClosed, *, by_peer: bool) -> LinkClosed:
    reason = exc.reason
    if reason is None:  # pragma: no cover - trio-websocket sets a reason whenever it closes
        return LinkClosed(1006, "", by_peer=by_peer)
    return LinkClosed(reason.code, reason.reason or "", by_peer=by_peer)


class PeerConnection:
    """Created by the dialer or listener once the handshake and authorisation are done."""

    def __init__(
        self,
        ws: WebSocketConnection,
        channel: SecureChannel,
        *,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        dead_after: float = DEAD_AFTER,
        queue_size: int = QUEUE_SIZE,
        close_timeout: float = CLOSE_TIMEOUT_S,
    ) -> None:
        self._ws = ws
        self._transport: Transport = channel.transport()
        self.peer_public_key: bytes = channel.peer_public_key
        self.peer_peer_id: str = channel.peer_peer_id
        self.invite: Presented | None = channel.peer_invite
        self.handshake_hash: bytes = channel.handshake_hash
        self.sas: str = channel.sas
        self._keepalive_interval = keepalive_interval
        self._dead_after = dead_after
        self._close_timeout = close_timeout
        self._send_lock = trio.Lock()
        self._inbox_send, self._inbox = trio.open_memory_channel[dict[str, Any]](queue_size)
        now = trio.current_time()
        self._last_sent = now
        self._last_received = now
        self.closed: LinkClosed | None = None
        self._closing = False
        self._close_with: tuple[int, str] | None = None  # why _broken() ended it, for the owner's aclose
        self._close_done = trio.Event()
        self._run_scope: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"PeerConnection(peer={self.peer_peer_id!r}, closed={self.closed is not None})"

    # -- admission (the one frame before the application's: SPEC §13.3.2) ------------------------

    async def send_accepted(self) -> None:
        """Responder: tell the guest it is admitted."""
        await self._send_plaintext(frames.ACCEPTED_FRAME)

    def check_accepted(self, wire: bytes) -> None:
        """Initiator: the host's first transport message must be 'accepted'."""
        kind, _ = frames.decode(self._transport.decrypt(wire))
        if kind != frames.ACCEPTED:
            raise RemoteProtocolError("malformed", "the host's first frame must be 'accepted'", CLOSE_PROTOCOL)

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Send one CBOR map. LocalProtocolError if it is not encodable or too large; LinkClosed if closed."""
        await self._send_plaintext(frames.encode_data(message))

    async def _send_plaintext(self, plaintext: bytes) -> None:
        # Take a free lock without trio's acquire() checkpoint: that yield would let every task the
        # caller just woke (watchers, replies) run before this message leaves. send_message checkpoints.
        try:
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            if self.closed is not None:
                raise self._closed_error()
            # Encrypting spends a nonce: a cancel pending now must land before that, not in send_message,
            # or the peer would wait for a message that never comes and fail every later one.
            await trio.lowlevel.checkpoint_if_cancelled()
            wire = self._transport.encrypt(plaintext)
            try:
                await self._ws.send_message(wire)
            except ConnectionClosed as exc:
                raise self._note_closed(closed_from(exc, by_peer=True)) from None
            except trio.Cancelled:
                # Cancelled while waiting to write (the peer is not reading): part of the frame may be out.
                # Nothing can follow it on this connection; end it, and the peer redials and re-syncs.
                self._broken("a send was interrupted part-way")
                raise
            self._last_sent = trio.current_time()
        finally:
            self._send_lock.release()

    # -- receiving --------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next map from the peer, in order; LinkClosed once the connection is over and drained."""
        try:
            return await self._inbox.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed_error() from None

    def receive_nowait(self) -> dict[str, Any] | None:
        """The next map if one has already arrived, else None (lets a handler batch what came together)."""
        try:
            return self._inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return None

    def __aiter__(self) -> PeerConnection:
        return self

    async def __anext__(self) -> dict[str, Any]:
        # A plain method, not an async generator: breaking out of `async for` leaves nothing to finalise.
        try:
            return await self.receive()
        except LinkClosed:
            raise StopAsyncIteration from None

    # -- lifetime ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """The reader and keepalive tasks; returns when the connection is closed. Run exactly once."""
        try:
            with trio.CancelScope() as self._run_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._heartbeat)
                    nursery.start_soon(self._watchdog)
                    await self._reader()
                    nursery.cancel_scope.cancel()
        finally:
            self._inbox_send.close()

    async def aclose(self, code: int = NORMAL_CLOSE, reason: str = "", *, timeout: float | None = None) -> None:
        """Close the WebSocket (bounded by `timeout`, default `close_timeout`) and stop the connection's tasks.

        Safe to call from several tasks: the first close wins and the others wait for it, so a handler
        closing normally cannot cut off the protocol-error close the reader is still sending.
        """
        if self._closing:
            await self._close_done.wait()
            return
        self._closing = True
        if self._close_with is not None:
            code, reason = self._close_with
        self._note_closed(LinkClosed(code, reason, by_peer=False))
        try:
            await close_ws(self._ws, code, reason, self._close_timeout if timeout is None else timeout)
        finally:
            self._inbox_send.close()
            if self._run_scope is not None:
                self._run_scope.cancel()
            self._close_done.set()

    def _closed_error(self) -> LinkClosed:
        # A fresh exception per raise, so tracebacks do not pile up on one shared object.
        c = self.closed or LinkClosed(NORMAL_CLOSE, "", by_peer=False)
        return LinkClosed(c.close_code, c.reason, by_peer=c.by_peer)

    def _broken(self, why: str) -> None:
        """The stream can no longer carry a message: refuse further sends and stop the reader and heartbeat,
        which makes the owner's handler see the end and close the socket (from a task not being cancelled)."""
        log.info("closing link to %s: %s", self.peer_peer_id, why)
        self._close_with = (CLOSE_PROTOCOL, close_reason("interrupted", why))
        self._note_closed(LinkClosed(*self._close_with, by_peer=False))
        self._inbox_send.close()
        if self._run_scope is not None:
            self._run_scope.cancel()

    def _note_closed(self, closed: LinkClosed) -> LinkClosed:
        if self.closed is None:
            self.closed = closed
        return self.closed

    async def _fail(self, exc: RemoteProtocolError) -> None:
        log.info("closing link to %s: %s (%s)", self.peer_peer_id, exc.code, exc.message)
        await self.aclose(exc.close_code, close_reason(exc.code, exc.message))

    async def _reader(self) -> None:
        while True:
            try:
                wire = await self._ws.get_message()
            except ConnectionClosed as exc:
                self._note_closed(closed_from(exc, by_peer=True))
                return
            self._last_received = trio.current_time()
            try:
                if not isinstance(wire, bytes):
                    raise RemoteProtocolError("malformed", "text WebSocket message", CLOSE_MALFORMED)
                kind, body = frames.decode(self._transport.decrypt(wire))
                if kind == frames.ACCEPTED:
                    raise RemoteProtocolError("malformed", "a second 'accepted' frame", CLOSE_PROTOCOL)
            except RemoteProtocolError as exc:
                await self._fail(exc)
                return
            if body is not None:
                try:
                    await self._inbox_send.send(body)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep_until(self._last_sent + self._keepalive_interval)
            if trio.current_time() >= self._last_sent + self._keepalive_interval:
                try:
                    await self._send_plaintext(frames.HEARTBEAT_FRAME)
                except LinkClosed:
                    return

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep_until(self._last_received + self._dead_after)
            if trio.current_time() >= self._last_received + self._dead_after:
                exc = RemoteProtocolError("timeout", f"nothing received for {self._dead_after:g} s", CLOSE_TIMEOUT)
                await self._fail(exc)
                return


def start_ws_reader(nursery: trio.Nursery, ws: Any) -> trio.Event:
    """Run a hand-built trio-websocket connection's reader in `nursery` (the library's own client and
    server do this privately); the event is set when the reader ends, e.g. because the peer dropped TCP
    during the upgrade, so a caller can race it against the upgrade instead of waiting out a timeout."""
    done = trio.Event()

    async def reader() -> None:
        try:
            await ws._reader_task()
        finally:
            done.set()

    nursery.start_soon(reader)
    return done
