"""A real guest daemon against a host that misbehaves: a forged event closes the link with its code and
is never appended. The 'host' here is our own link and core driven by the test, so it can lie."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from clawroomd.core.errors import CLOSE_BAD_SIGNATURE
from clawroomd.core.events import FieldSpec, Message, RoomCreated
from clawroomd.core.identity import Identity
from clawroomd.core.joinurl import JoinURL
from clawroomd.core.room import HostRoom
from clawroomd.daemon.clock import now_ms
from clawroomd.link import LinkClosed, PeerConnection, serve_peers
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
ROOM = "cr_0a0b0c0d0e0f1011"


async def test_forged_host_event_closes_the_link_and_is_not_appended(tmp_path: Path) -> None:
    host_id = Identity.from_seed(os.urandom(32))
    room = HostRoom.create(host_id, room_id=ROOM, spec=RoomCreated(topic="t", goal="", fields=(
        FieldSpec(name="price"),)), now_ms=now_ms(), mono_ms=1_000)
    closed_with: list[int] = []
    done = trio.Event()

    async def authorize(peer_key: bytes, invite: object) -> None:
        return None

    async def lying_host(conn: PeerConnection) -> None:
        lied = False  # the join's own invite connection closes normally before any of this
        try:
            async for frame in conn:
                if frame["t"] == "sync":
                    await conn.send({"t": "event", "room": ROOM, "env": room.log[0].envelope})
                elif frame["t"] == "submit":  # the guest's `joined`: accept it honestly, then lie
                    for e in room.receive(frame["env"], now_ms=now_ms(), mono_ms=2_000).events:
                        await conn.send({"t": "event", "room": ROOM, "env": e.envelope})
                    sent = room.send(Message(text="forged"), sid="f", now_ms=now_ms(), mono_ms=3_000)
                    forged = bytearray(sent.events[0].envelope)
                    forged[-1] ^= 1
                    await conn.send({"t": "event", "room": ROOM, "env": bytes(forged)})
                    lied = True
            if lied:
                assert conn.closed is not None and conn.closed.by_peer
                closed_with.append(conn.closed.close_code)
        except LinkClosed as exc:
            closed_with.append(exc.close_code)
        finally:
            if lied:
                done.set()

    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning={"max_backoff": 5.0}).start()
    try:
        async with trio.open_nursery() as nursery:
            _, port = await nursery.start(lambda task_status: serve_peers(
                "127.0.0.1", 0, identity=host_id, static_private=os.urandom(32), authorize=authorize,
                handler=lying_host, task_status=task_status))
            url = JoinURL(room_id=ROOM, host_peer_id=host_id.peer_id, addrs=(("127.0.0.1", port),),
                          secret=os.urandom(16)).format()
            joined = await trio.to_thread.run_sync(lambda: guest.call("room.join", join_url=url))
            assert joined["lifecycle"] == "active"
            with trio.fail_after(10):
                await done.wait()
            nursery.cancel_scope.cancel()
        assert closed_with == [CLOSE_BAD_SIGNATURE]
        status = guest.call("room.status", room_id=ROOM)
        assert status["seq"] == 1 and status["turns"] == 0  # room_created + joined; the forgery is not there
        assert len(guest.transcript(ROOM).splitlines()) == 2
    finally:
        guest.stop()
