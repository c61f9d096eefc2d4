"""Both sides in one trio run (`HostSide` and `GuestSide` over a real loopback peer link, real SQLite): a
whole room to agreement with identical transcripts on both daemons, and a guest move made while the
host daemon is down, queued and delivered once the host is back on the same address."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clawroomd.core.identity import Identity
from clawroomd.daemon.errors import ApiError
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.inprocess import call, listen_port, open_daemon, open_room, until

TUNING = {"keepalive_interval": 0.5, "dead_after": 3.0, "max_backoff": 0.3, "send_timeout": 0.5}


def transcript(daemon: Daemon, room_id: str) -> list[tuple[int, bytes, bytes]]:
    """The room as this daemon's database holds it: (seq, hash, envelope) per event."""
    return [(row.seq, row.hash, row.envelope) for row in daemon.store.events(room_id)]


async def test_a_room_reaches_agreement_and_both_daemons_hold_the_same_transcript_and_result(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, max_turns=6)
        joined = await call(guest, "room.status", room_id=rid)
        assert joined["role"] == "guest" and joined["lifecycle"] == "active" and joined["seq"] == 1
        sent = await call(host, "room.send", room_id=rid, text="100?", propose={"price": "100"})
        assert sent["event"]["seq"] == 2 and sent["event"]["author"] == "host"
        await until(lambda: guest.rooms[rid].our_turn)
        sent = await call(guest, "room.send", room_id=rid, text="ok", accept=["price"])
        assert sent["event"]["seq"] == 3 and sent["event"]["body"]["moves"][0]["value"] == "100"
        await until(lambda: host.rooms[rid].our_turn)
        assert (await call(host, "room.close", room_id=rid))["event"]["kind"] == "close_proposed"
        await until(lambda: guest.rooms[rid].our_turn)
        assert (await call(guest, "room.close", room_id=rid))["event"]["kind"] == "close_accepted"
        await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed)

        assert transcript(host, rid) == transcript(guest, rid) and len(transcript(host, rid)) == 7
        assert host.rooms[rid].state == guest.rooms[rid].state
        files = [d.store.room_dir(rid).joinpath("transcript.jsonl").read_bytes() for d in (host, guest)]
        assert files[0] == files[1] and files[0].count(b"\n") == 7
        # wait_s: each side writes its result files just after the close
        results = [await call(d, "room.result", room_id=rid, wait_s=10) for d in (host, guest)]
        assert [r.pop("role") for r in results] == ["host", "guest"]
        assert [(r.pop("files") is None, r.pop("delivery")) for r in results] == [(False, None)] * 2  # paths differ
        assert results[0] == results[1]
        assert results[0]["status"] == "agreement_reached" and results[0]["outcomes"] == {"price": "100"}
        assert results[0]["head"] == host.rooms[rid].state.head.hex() and results[0]["events"] == 7
        for d in (host, guest):
            row = d.store.get_room(rid)
            assert row is not None and row.phase == "closed" and row.result is not None
            assert row.result["digest"] == results[0]["digest"]


async def test_a_guest_move_while_the_host_is_down_is_queued_and_lands_when_it_is_back(tmp_path: Path) -> None:
    host_id = Identity.from_seed(os.urandom(32))
    async with open_daemon(tmp_path / "guest", tuning=TUNING) as guest:
        async with open_daemon(tmp_path / "host", tuning=TUNING, identity=host_id) as host:
            rid = await open_room(host, guest)
            await call(host, "room.send", room_id=rid, text="100?", propose={"price": "100"})
            await until(lambda: guest.rooms[rid].our_turn)
            port = listen_port(host)
        await until(lambda: not guest.rooms[rid].link_up)

        answer: dict[str, Any] = await call(guest, "room.send", room_id=rid, text="ok", accept=["price"])
        assert answer["queued"] is True and "unreachable" in answer["message"]
        sid = answer["sid"]
        assert [row.sid for row in guest.store.outbox(rid)] == [sid]
        assert guest.rooms[rid].state.seq == 2  # not in the room until the host has sequenced it
        assert guest.guest_side.queued_move(guest.rooms[rid]) == sid  # our turn is taken meanwhile
        with pytest.raises(ApiError) as err:  # a second reply to the same turn is refused, not queued
            await call(guest, "room.send", room_id=rid, text="again", expect_seq=2)
        assert err.value.code == "conflict" and err.value.data == {"queued_sid": sid}

        async with open_daemon(tmp_path / "host", tuning=TUNING, identity=host_id, port=port) as host:
            assert host.rooms[rid].state.seq == 2
            await until(lambda: host.rooms[rid].state.seq == 3 and guest.rooms[rid].state.seq == 3)
            await until(lambda: guest.store.outbox(rid) == [])
            landed = host.rooms[rid].core.log[3]
            assert landed.header.author == "guest" and landed.header.sid == sid
            assert landed.to_json()["body"]["text"] == "ok" and host.rooms[rid].state.agreed == {"price": "100"}
            assert transcript(host, rid) == transcript(guest, rid)
            assert host.rooms[rid].our_turn and not guest.rooms[rid].our_turn
