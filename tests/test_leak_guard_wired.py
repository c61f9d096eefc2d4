"""The leak guard at the last step before our daemon signs (issue 9 item 2): a local caller pressing a
private number in any spelling, through any field that reaches the peer (message text, a proposed value,
a cancel reason, the room's topic, a join label), is refused with `leak_blocked`, and nothing is signed,
stored or sent: the room's seq is unchanged on both sides and no frame carried it. Two real daemons in
one trio run (loopback link, SQLite stores); every plaintext frame is captured before encryption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawroomd.daemon.errors import ApiError
from clawroomd.testing.inprocess import call, open_daemon, open_room, until

CEILING = "our ceiling is 48500 EUR"

LEAKS = [
    {"text": "We could stretch to 48,500."},
    {"text": "How about €48.5k?"},
    {"text": "forty-eight thousand five hundred is our limit"},
    {"text": "4万8500なら"},
    {"text": "Our Ceiling   IS 48500 eur, frankly"},
    {"propose": {"price": "48 500 EUR"}},
    {"propose": {"price": "EUR 48500"}},
]


async def refused(daemon: Any, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await call(daemon, method, **params)
    return err.value


async def test_every_leaking_spelling_is_refused_and_nothing_crosses(tmp_path: Path, wire_frames: list[bytes]) -> None:
    frames = wire_frames
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        await call(host, "context.write", fields={"owner_name": "alice", "private_facts": [CEILING]})
        await call(guest, "context.write", fields={"owner_name": "bob", "private_facts": ["48500"]})
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        before = host.rooms[room_id].state.seq
        for leak in LEAKS:
            err = await refused(host, "room.send", room_id=room_id, **leak)
            assert err.code == "leak_blocked", leak
            assert err.data["fact_index"] == 0 and "private fact #1" in err.message
            assert host.rooms[room_id].state.seq == before, leak
        # not a hit: other numbers
        await call(host, "room.send", room_id=room_id, text="We offer 52,000, or 149500 over three years.",
                   propose={"price": "52000 EUR"})  # fmt: skip
        await until(lambda: guest.rooms[room_id].state.seq == before + 1)
        # the guest side is guarded too: its cancel reason and its messages
        err = await refused(guest, "room.cancel", room_id=room_id, reason="not below 48,500")
        assert err.code == "leak_blocked"
        err = await refused(guest, "room.send", room_id=room_id, text="we need forty eight thousand five hundred")
        assert err.code == "leak_blocked"
        assert guest.rooms[room_id].state.seq == host.rooms[room_id].state.seq == before + 1
        assert guest.store.outbox(room_id) == []
        # a new room whose topic would carry the fact is never created
        err = await refused(host, "room.create", topic="price, ceiling 48.500", fields=["price"])
        assert err.code == "leak_blocked" and len(host.rooms) == 1
        transcripts = b"".join(
            (d.store.room_dir(room_id) / "transcript.jsonl").read_bytes() for d in (host, guest)
        )
    wire = b"".join(frames)
    for spelling in (b"48500", b"48,500", b"48.5k", b"48 500", "4万8500".encode()):
        assert spelling not in wire and spelling not in transcripts
    assert b"52000 EUR" in transcripts
    assert b"52000 EUR" in wire  # the capture did see the room's traffic
