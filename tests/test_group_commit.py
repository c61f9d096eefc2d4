"""Group commit on the host: guest submissions for several rooms that arrive together are appended and
committed in one transaction, answered only after it, and rolled back all together if it fails.

Real daemons in one trio run (as in test_storage_failure). The frames are handed to the host's frame
handler by a stand-in for the link connection that holds them as "already arrived": arrival timing on a
real socket cannot be made deterministic, and the batching depends on nothing else from the link.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio
from test_storage_failure import BIG, Side, open_room, sides, until  # noqa: F401 - `sides` is a fixture

from clawroomd.core import sids
from clawroomd.core.events import Message
from clawroomd.daemon.clock import now_ms
from clawroomd.daemon.store import StorageFailed


class ArrivedTogether:
    """The link connection as the host's handler sees it: the guest's key, frames that have already
    arrived (receive_nowait), and what the host sends back."""

    def __init__(self, peer_public_key: bytes, frames: list[dict[str, Any]]) -> None:
        self.peer_public_key = peer_public_key
        self.frames = frames
        self.sent: list[dict[str, Any]] = []

    def receive_nowait(self) -> dict[str, Any] | None:
        return self.frames.pop(0) if self.frames else None

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def guest_turn_in(host: Side, guest: Side, rooms: int) -> list[str]:
    ids = [await open_room(host, guest) for _ in range(rooms)]
    for room_id in ids:
        await host.call("room.send", room_id=room_id, text="your turn")
    await until("the guest's turn everywhere", lambda: all(guest.sup.rooms[r].our_turn for r in ids))
    return ids


def signed_moves(guest: Side, ids: list[str], text: str) -> list[dict[str, Any]]:
    frames = []
    for room_id in ids:
        sid = sids.local(secrets.token_hex(8))
        sub = guest.sup.rooms[room_id].guest.prepare(Message(text=text), sid=sid, now_ms=now_ms())
        frames.append({"t": "submit", "room": room_id, "sid": sid, "env": sub.events[0].envelope})
    return frames


async def test_submissions_that_arrive_together_share_one_commit(sides: tuple[Side, Side]) -> None:  # noqa: F811
    host, guest = sides
    ids = await guest_turn_in(host, guest, 3)
    before = {r: host.core_head(r)[0] for r in ids}
    frames = signed_moves(guest, ids, "together")
    conn = ArrivedTogether(guest.sup.rooms.identity.public_key, frames[1:])
    commits = host.store.commits
    async with trio.open_nursery() as nursery:
        await host.sup.host_side._on_frames(conn, frames[0], nursery)  # type: ignore[arg-type]
    assert host.store.commits == commits + 1  # one transaction for the three rooms
    for room_id in ids:
        assert host.core_head(room_id) == host.db_head(room_id)
        assert host.core_head(room_id)[0] == before[room_id] + 1
        assert host.sup.rooms[room_id].core.log[-1].body == Message(text="together")
    # each room's new event went to the guest (on its real feed), none was refused
    assert conn.sent == []
    await until("the guest has all three", lambda: all(guest.core_head(r) == host.core_head(r) for r in ids))


async def test_a_batch_the_host_cannot_save_is_rolled_back_in_every_room(sides: tuple[Side, Side]) -> None:  # noqa: F811
    host, guest = sides
    ids = await guest_turn_in(host, guest, 3)
    before = {r: host.core_head(r) for r in ids}
    changed = {r: host.sup.rooms[r].changed for r in ids}
    frames = signed_moves(guest, ids, BIG)
    conn = ArrivedTogether(guest.sup.rooms.identity.public_key, frames[1:])
    host.fill()
    async with trio.open_nursery() as nursery:
        with pytest.raises(StorageFailed):
            await host.sup.host_side._on_frames(conn, frames[0], nursery)  # type: ignore[arg-type]
    for room_id in ids:  # memory is the database again, in every room, and nobody was told anything
        assert host.core_head(room_id) == host.db_head(room_id) == before[room_id]
        assert not changed[room_id].is_set()
        feed = host.sup.host_side.feeds[room_id]
        assert feed.sent == before[room_id][0]
    assert conn.sent == []
    host.free()
