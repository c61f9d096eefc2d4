"""The trio peer link: memory streams on a virtual clock for timing, real loopback sockets for the rest."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    connect_websocket,
    wrap_client_stream,
    wrap_server_stream,
)

from clawroomd.core import cbor
from clawroomd.core.errors import (
    CLOSE_INVITE,
    CLOSE_MALFORMED,
    CLOSE_TIMEOUT,
    CLOSE_UNDECRYPTABLE,
    CLOSE_WRONG_PEER,
    LocalProtocolError,
    RemoteProtocolError,
)
from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite, InviteRecord, check_invite, new_invite
from clawroomd.link import (
    RESOURCE,
    DialFailed,
    LinkClosed,
    PeerConnection,
    accept_peer,
    connect_peer,
    dial_peer,
    frames,
    serve_peers,
)
from clawroomd.link.connection import MAX_WS_MESSAGE, close_ws

HOST = Identity.from_seed(b"h" * 32)
GUEST = Identity.from_seed(b"g" * 32)
EVE = Identity.from_seed(b"e" * 32)
HOST_STATIC, GUEST_STATIC = os.urandom(32), os.urandom(32)
ROOM = "cr_00112233445566778899"
SECRET = b"S" * 16
T0_MS = 1_800_000_000_000


@dataclass(kw_only=True)
class Host:
    """A toy daemon: one room with one invite, bound to the guest that first redeems it."""

    invites: dict[str, InviteRecord] = field(default_factory=dict)
    bound: dict[str, bytes] = field(default_factory=dict)
    now_ms: int = T0_MS
    delivered: list[dict[str, Any]] = field(default_factory=list)
    authorize_calls: int = 0

    async def authorize(self, peer_key: bytes, invite: Invite | None) -> None:
        self.authorize_calls += 1
        if invite is None:
            if peer_key not in self.bound.values():
                raise RemoteProtocolError("unknown_peer", "no room is bound to this key", CLOSE_WRONG_PEER)
            return
        record = self.invites.get(invite.room_id)
        if record is None:
            raise RemoteProtocolError("bad_invite", "no such invite", CLOSE_INVITE)
        check_invite(record, invite, self.now_ms)
        self.invites[invite.room_id] = replace(record, used=True)
        self.bound[invite.room_id] = peer_key

    async def handler(self, conn: PeerConnection) -> None:
        async for message in conn:
            self.delivered.append(message)
            await conn.send({"sha256": hashlib.sha256(cbor.encode(message)).digest()})


@asynccontextmanager
async def serving(host: Host, **options: Any) -> AsyncIterator[tuple[str, int]]:
    async with trio.open_nursery() as nursery:
        addr = await nursery.start(
            partial(
                serve_peers,
                "127.0.0.1",
                0,
                identity=HOST,
                static_private=HOST_STATIC,
                authorize=host.authorize,
                handler=host.handler,
                **options,
            )
        )
        yield addr
        nursery.cancel_scope.cancel()


def _host() -> Host:
    return Host(invites={ROOM: new_invite(ROOM, SECRET, T0_MS)})


def _dial(addr: tuple[str, int], **kw: Any) -> Any:
    kw.setdefault("expected_peer_id", HOST.peer_id)
    kw.setdefault("invite", Invite(room_id=ROOM, secret=SECRET))
    return dial_peer(addr, identity=GUEST, static_private=GUEST_STATIC, **kw)


# -- real loopback sockets ------------------------------------------------------------------------------


async def test_join_round_trips_and_reconnect_by_key() -> None:
    host = _host()
    async with serving(host) as addr:
        assert addr[0] == "127.0.0.1" and addr[1] > 0
        async with _dial(addr) as conn:
            assert conn.peer_peer_id == HOST.peer_id and len(conn.sas) == 6
            rng = random.Random(3)
            # The largest map that fits one frame: [0, {"b": bytes}] costs 10 bytes of CBOR around the bytes.
            limit = MAX_WS_MESSAGE - 16 - 10
            for size in [0, 1, limit, *(rng.randrange(limit) for _ in range(12))]:
                body = {"b": rng.randbytes(size)}
                await conn.send(body)
                assert await conn.receive() == {"sha256": hashlib.sha256(cbor.encode(body)).digest()}
        # Reconnect: no invite, the room is bound to the guest's key.
        async with _dial(addr, invite=None) as conn:
            await conn.send({"hello": "again"})
            assert "sha256" in await conn.receive()
    assert host.bound == {ROOM: GUEST.public_key}
    assert host.delivered[-1] == {"hello": "again"}


async def test_oversized_send_is_refused_locally() -> None:
    host = _host()
    async with serving(host) as addr, _dial(addr) as conn:
        with pytest.raises(LocalProtocolError) as err:
            await conn.send({"b": bytes(MAX_WS_MESSAGE)})
        assert err.value.code == "too_large"
        await conn.send({"still": "usable"})  # nothing was encrypted, so the nonces are still in step
        assert "sha256" in await conn.receive()


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda h: None, None),  # control: the join works
        (lambda h: h.invites.update({ROOM: replace(h.invites[ROOM], used=True)}), "invite_used"),
        (lambda h: setattr(h, "now_ms", T0_MS + 72 * 3600 * 1000), "invite_expired"),
    ],
)
async def test_invite_refusals(setup: Any, code: str | None) -> None:
    host = _host()
    setup(host)
    async with serving(host) as addr:
        if code is None:
            async with _dial(addr) as conn:
                await conn.send({"x": 1})
                await conn.receive()
            return
        with pytest.raises(LinkClosed) as err:
            async with _dial(addr):
                pytest.fail("joined with a refused invite")
    assert err.value.error_code == code and err.value.close_code == CLOSE_INVITE and err.value.by_peer
    assert host.delivered == [] and ROOM not in host.bound


async def test_wrong_secret_and_reused_invite() -> None:
    host = _host()
    async with serving(host) as addr:
        with pytest.raises(LinkClosed) as err:
            async with _dial(addr, invite=Invite(room_id=ROOM, secret=b"x" * 16)):
                pass
        assert err.value.error_code == "bad_invite"
        async with _dial(addr):
            pass
        with pytest.raises(LinkClosed) as err:
            async with dial_peer(
                addr,
                identity=EVE,
                static_private=os.urandom(32),
                expected_peer_id=HOST.peer_id,
                invite=Invite(room_id=ROOM, secret=SECRET),
            ):
                pass
        assert err.value.error_code == "invite_used"
        with pytest.raises(LinkClosed) as err:  # Eve without invite is not the bound guest either
            async with dial_peer(addr, identity=EVE, static_private=os.urandom(32), expected_peer_id=HOST.peer_id):
                pass
        assert err.value.error_code == "unknown_peer"
    assert host.bound == {ROOM: GUEST.public_key} and host.delivered == []


async def test_wrong_host_is_refused_before_the_invite_leaves() -> None:
    host = _host()
    async with serving(host) as addr:
        with pytest.raises(RemoteProtocolError) as err:
            async with _dial(addr, expected_peer_id=EVE.peer_id):
                pass
    assert err.value.code == "wrong_peer"
    assert host.authorize_calls == 0 and host.invites[ROOM].used is False


async def test_dial_failures() -> None:
    with trio.socket.socket() as sock:  # a port with nobody listening
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DialFailed):
        async with _dial(("127.0.0.1", port)):
            pass


@asynccontextmanager
async def raw_guest(addr: tuple[str, int]) -> AsyncIterator[tuple[WebSocketConnection, PeerConnection]]:
    """A guest that completes the handshake but then writes whatever the test wants on the WebSocket."""
    async with trio.open_nursery() as nursery:
        ws = await connect_websocket(nursery, addr[0], addr[1], RESOURCE, use_ssl=False)
        conn = await connect_peer(
            ws,
            identity=GUEST,
            static_private=GUEST_STATIC,
            expected_peer_id=HOST.peer_id,
            invite=Invite(room_id=ROOM, secret=SECRET),
        )
        yield ws, conn
        await close_ws(ws, 1000, "")
        nursery.cancel_scope.cancel()


async def _close_code(ws: WebSocketConnection) -> int:
    with trio.fail_after(5):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason is not None
                return exc.reason.code


def _wire(conn: PeerConnection, body: dict[str, Any]) -> bytes:
    return conn._transport.encrypt(frames.encode_data(body))


@pytest.mark.parametrize(
    ("attack", "close_code", "delivered"),
    [
        ("replay", CLOSE_UNDECRYPTABLE, 1),
        ("reorder", CLOSE_UNDECRYPTABLE, 0),
        ("garbage", CLOSE_UNDECRYPTABLE, 0),
        ("oversized", 1009, 0),
        ("text", CLOSE_MALFORMED, 0),
    ],
)
async def test_transport_attacks_close_the_link(attack: str, close_code: int, delivered: int) -> None:
    host = _host()
    async with serving(host) as addr, raw_guest(addr) as (ws, conn):
        first, second = _wire(conn, {"n": 1}), _wire(conn, {"n": 2})
        if attack == "replay":
            await ws.send_message(first)
            await ws.send_message(first)
        elif attack == "reorder":
            await ws.send_message(second)
            await ws.send_message(first)
        elif attack == "garbage":
            await ws.send_message(os.urandom(100))
        elif attack == "oversized":
            await ws.send_message(bytes(MAX_WS_MESSAGE + 1))
        else:
            await ws.send_message("hello")
        assert await _close_code(ws) == close_code
    assert host.delivered == [{"n": 1}][:delivered]


# -- memory streams on the virtual clock -----------------------------------------------------------------


@asynccontextmanager
async def memory_ws(
    stream_pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]] = trio.testing.memory_stream_pair,
) -> AsyncIterator[tuple[WebSocketConnection, WebSocketConnection]]:
    """A websocket pair over in-memory streams (`trio.testing.lockstep_stream_pair`: a send waits for the read)."""
    client_stream, server_stream = stream_pair()
    async with trio.open_nursery() as nursery:
        server_ws: list[WebSocketConnection] = []

        async def serve() -> None:
            request = await wrap_server_stream(nursery, server_stream)
            server_ws.append(await request.accept())

        nursery.start_soon(serve)
        client = await wrap_client_stream(nursery, client_stream, "peer", RESOURCE)  # type: ignore[arg-type]
        await trio.testing.wait_all_tasks_blocked()
        yield client, server_ws[0]
        nursery.cancel_scope.cancel()


async def _pair(
    client: WebSocketConnection, server: WebSocketConnection, **options: Any
) -> tuple[PeerConnection, PeerConnection]:
    host = _host()
    result: list[PeerConnection] = []

    async def accept() -> None:
        result.append(
            await accept_peer(server, identity=HOST, static_private=HOST_STATIC, authorize=host.authorize, **options)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        guest = await connect_peer(
            client,
            identity=GUEST,
            static_private=GUEST_STATIC,
            expected_peer_id=HOST.peer_id,
            invite=Invite(room_id=ROOM, secret=SECRET),
            **options,
        )
    return guest, result[0]


async def test_keepalive_holds_a_quiet_link_and_notices_a_dead_peer(autojump_clock: trio.abc.Clock) -> None:
    async with memory_ws() as (client, server):
        guest, host = await _pair(client, server, keepalive_interval=10, dead_after=30)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(guest.run)
            nursery.start_soon(host.run)
            await trio.sleep(300)  # ten times dead_after without a single application message
            assert guest.closed is None and host.closed is None
            assert guest.sas == host.sas
            # The guest's process freezes: its tasks stop, its socket stays open, nothing more is sent.
            frozen_at = trio.current_time()
            assert guest._run_scope is not None
            guest._run_scope.cancel()
            with trio.fail_after(31):
                with pytest.raises(LinkClosed):
                    await host.receive()
            assert host.closed is not None and host.closed.close_code == CLOSE_TIMEOUT
            assert host.closed.error_code == "timeout"
            assert 20 <= trio.current_time() - frozen_at <= 30 + 0.01
            nursery.cancel_scope.cancel()


async def test_handshake_timeout_on_the_host(autojump_clock: trio.abc.Clock) -> None:
    async with memory_ws() as (client, server):
        start = trio.current_time()
        with pytest.raises(DialFailed):
            await accept_peer(server, identity=HOST, static_private=HOST_STATIC, authorize=_host().authorize, timeout=7)
        assert trio.current_time() - start == pytest.approx(7)
        assert await _close_code(client) == CLOSE_TIMEOUT


async def test_handshake_timeout_on_the_guest(autojump_clock: trio.abc.Clock) -> None:
    async with memory_ws() as (client, server):
        start = trio.current_time()
        with pytest.raises(DialFailed):
            await connect_peer(
                client, identity=GUEST, static_private=GUEST_STATIC, expected_peer_id=HOST.peer_id, timeout=5
            )
        assert trio.current_time() - start == pytest.approx(5)
        assert await _close_code(server) == CLOSE_TIMEOUT


async def test_refusal_reaches_the_guest_before_any_frame(autojump_clock: trio.abc.Clock) -> None:
    async def refuse(key: bytes, invite: Invite | None) -> None:
        raise RemoteProtocolError("bad_invite", "no", CLOSE_INVITE)

    async def host_side() -> None:
        with pytest.raises(RemoteProtocolError):
            await accept_peer(server, identity=HOST, static_private=HOST_STATIC, authorize=refuse)

    async with memory_ws() as (client, server), trio.open_nursery() as nursery:
        nursery.start_soon(host_side)
        with pytest.raises(LinkClosed) as err:
            await connect_peer(
                client, identity=GUEST, static_private=GUEST_STATIC, expected_peer_id=HOST.peer_id, timeout=5
            )
        assert err.value.close_code == CLOSE_INVITE and err.value.error_code == "bad_invite"
        nursery.cancel_scope.cancel()
