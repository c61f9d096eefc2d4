"""The room registry (`daemon/rooms.py`) in-process: lookups and their errors, the one commit path (the
database holds an event, and the room row its phase, before anyone is woken), and restore from a real
store after the daemons stop (same seq and head; deadlines armed again). Real daemons on loopback,
real SQLite; the database is read back through a second, read-only SQLite connection, which sees only
what was committed."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.daemon.clock import mono_ms
from clawroomd.daemon.errors import ApiError
from clawroomd.daemon.live import LiveRoom
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.inprocess import call, listen_port, open_daemon, open_room, until

UNKNOWN = "cr_00000000000000ff"


def new_identity() -> Identity:
    return Identity.from_seed(os.urandom(32))


async def refused(daemon: Daemon, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await call(daemon, method, **params)
    return err.value


async def test_lookup_and_get_find_only_rooms_held_and_say_unknown_room_otherwise(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "d") as d:
        assert len(d.rooms) == 0 and list(d.rooms) == []
        rid = (await call(d, "room.create", topic="t", fields=["price"]))["room_id"]
        live = d.rooms.get(rid)
        assert live is d.rooms[rid] is d.rooms.lookup(rid) and live.role == "host" and live.room_id == rid
        assert rid in d.rooms and len(d.rooms) == 1 and list(d.rooms) == [live]
        for bad in (UNKNOWN, rid.upper(), "", 42, None, [rid], {rid: 1}):
            assert d.rooms.lookup(bad) is None
            with pytest.raises(ApiError) as err:
                d.rooms.get(bad)
            assert err.value.code == "unknown_room" and repr(bad) in err.value.message
        err = await refused(d, "room.status", room_id=UNKNOWN)
        assert err.code == "unknown_room" and err.rpc_code == 1003
        assert (await refused(d, "room.status", room_id=42)).code == "invalid_params"
        assert UNKNOWN not in d.rooms and 42 not in d.rooms


async def test_membership_of_an_unhashable_id_is_false(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "d") as d:
        rid = (await call(d, "room.create", topic="t", fields=["price"]))["room_id"]
        assert [rid] not in d.rooms and {rid: 1} not in d.rooms


def tamper(db: Path, room_id: str, seq: int, old: bytes, new: bytes) -> None:
    """Change bytes inside one stored envelope and fix its stored hash, as a careful tamperer would:
    only the signature can tell."""
    con = sqlite3.connect(db)
    (env,) = con.execute("SELECT envelope FROM events WHERE room_id = ? AND seq = ?", (room_id, seq)).fetchone()
    assert env.count(old) == 1 and len(old) == len(new)
    env = env.replace(old, new)
    con.execute(
        "UPDATE events SET envelope = ?, hash = ? WHERE room_id = ? AND seq = ?",
        (env, hashlib.sha256(env).digest(), room_id, seq),
    )
    con.commit()
    con.close()


async def test_a_room_that_fails_verification_at_restore_is_storage_failed_and_the_others_are_served(
    tmp_path: Path,
) -> None:
    me, folder = new_identity(), tmp_path / "d"
    async with open_daemon(folder, identity=me) as d:
        good = (await call(d, "room.create", topic="kept as it is", fields=["price"]))["room_id"]
        bad = (await call(d, "room.create", topic="tamper with me", fields=["price"]))["room_id"]
    tamper(folder / "clawroomd.db", bad, 0, b"tamper with me", b"TAMPER WITH ME")
    async with open_daemon(folder, identity=me) as d:
        assert d.rooms.get(good).state.spec is not None and d.rooms.get(good).state.spec.topic == "kept as it is"
        assert bad not in d.rooms and d.rooms.lookup(bad) is None  # a peer asking for it finds nothing
        assert list(d.rooms.damaged) == [bad] and d.rooms.damaged[bad].startswith("bad_signature")
        with pytest.raises(ApiError) as err:
            d.rooms.get(bad)
        assert err.value.code == "storage_failed" and err.value.data["room_id"] == bad
        assert "failed verification" in err.value.message and "bad_signature" in err.value.data["damaged"]
        assert (await refused(d, "room.transcript", room_id=bad)).code == "storage_failed"
        info = await call(d, "daemon.info")
        assert info["damaged_rooms"] == [bad] and info["rooms"] == 1
        # the damaged room's rows are left as they are (restore from a backup is the owner's call)
        con = sqlite3.connect(folder / "clawroomd.db")
        assert con.execute("SELECT count(*) FROM events WHERE room_id = ?", (bad,)).fetchone() == (1,)
        con.close()


class CommitProbe:
    """At every wake-up of a room (`LiveRoom.bump`, the only way watchers, agents and feeds hear of a
    change), note what a second connection reads from the database next to what the room holds."""

    def __init__(self, daemon: Daemon, live: LiveRoom) -> None:
        self.live = live
        self.reader = sqlite3.connect(f"file:{daemon.store.db_path}?mode=ro", uri=True)
        self.seen: list[tuple[tuple[int, str], tuple[int, str]]] = []
        self._bump = live.bump
        live.bump = self.bump  # type: ignore[method-assign]

    def bump(self) -> None:
        rid = self.live.room_id
        (seq,) = self.reader.execute("SELECT max(seq) FROM events WHERE room_id = ?", (rid,)).fetchone()
        (phase,) = self.reader.execute("SELECT phase FROM rooms WHERE room_id = ?", (rid,)).fetchone()
        self.seen.append(((self.live.state.seq, self.live.state.phase), (seq, phase)))
        self._bump()

    def close(self) -> None:
        self.live.bump = self._bump  # type: ignore[method-assign]
        self.reader.close()


async def test_commit_has_the_event_and_the_phase_in_the_database_before_anyone_is_woken(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest)
        probes = {"host": CommitProbe(host, host.rooms[rid]), "guest": CommitProbe(guest, guest.rooms[rid])}
        woke_at: list[int] = []

        async def watcher() -> None:  # as room.watch does: take `changed`, then read
            live = host.rooms[rid]
            while not live.closed:
                changed = live.changed
                await changed.wait()
                woke_at.append(host.store.last_seq(rid))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher)
            await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"})
            await until(lambda: guest.rooms[rid].our_turn)
            await call(guest, "room.send", room_id=rid, text="ok", accept=["price"])
            await until(lambda: host.rooms[rid].our_turn)
            await call(host, "room.close", room_id=rid)
            await until(lambda: guest.rooms[rid].our_turn)
            await call(guest, "room.close", room_id=rid)
            await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed)
        kinds = [e.kind for e in host.rooms[rid].core.log]
        assert kinds == [
            "room_created", "joined", "message", "message", "close_proposed", "close_accepted", "room_closed"
        ]  # fmt: skip
        for name, probe in probes.items():
            probe.close()
            phases = {held[1] for held, _ in probe.seen}
            assert {"active", "delivering", "closed"} <= phases, (name, probe.seen)
            for held, in_db in probe.seen:
                assert in_db == held, f"{name} woke its watchers at {held} while the database held {in_db}"
        assert woke_at and woke_at[-1] == 6 and woke_at == sorted(woke_at)


async def test_host_and_guest_rooms_restore_with_the_same_head_and_their_deadlines_armed_again(
    tmp_path: Path,
) -> None:
    ids = {"host": new_identity(), "guest": new_identity()}
    async with (
        open_daemon(tmp_path / "host", identity=ids["host"]) as host,
        open_daemon(tmp_path / "guest", identity=ids["guest"]) as guest,
    ):
        rid = await open_room(host, guest, deadline_s=2.5)
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"})
        await until(lambda: guest.rooms[rid].state.seq == 2)
        before = {d.rooms[rid].role: (d.rooms[rid].state, len(d.rooms[rid].core.log)) for d in (host, guest)}
        due = host.rooms[rid].host.next_deadline()
        port = listen_port(host)
    assert due is not None and "deadline" in due[1] and before["host"] == before["guest"]
    assert before["host"][0].phase == "active"  # the deadline has not passed yet: a restart must re-arm it
    async with (
        open_daemon(tmp_path / "host", identity=ids["host"], port=port) as host,
        open_daemon(tmp_path / "guest", identity=ids["guest"]) as guest,
    ):
        for d, role in ((host, "host"), (guest, "guest")):
            live = d.rooms[rid]
            assert live.role == role and (live.state, len(live.core.log)) == before[role]
            assert live.stored_phase == "active" and not live.closed
        assert guest.rooms[rid].our_turn and not host.rooms[rid].our_turn
        again = host.rooms[rid].host.next_deadline()
        # the same instant (wall-clock deadline, re-read on our monotonic clock) within the clock's jitter
        assert again is not None and again[1] == due[1] and abs(again[0] - due[0]) < 100
        assert again[0] > mono_ms()
        await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed, timeout=10)
        for d in (host, guest):
            result = await call(d, "room.result", room_id=rid)
            assert result["status"] == "timeout" and result["events"] == 4 and "local" not in result
        assert host.rooms[rid].state.head == guest.rooms[rid].state.head


async def test_a_restored_guest_whose_host_never_returns_ends_the_room_locally_after_the_deadline(
    tmp_path: Path,
) -> None:
    guest_id, tuning = new_identity(), {"max_backoff": 0.3, "guest_grace": 0.2, "send_timeout": 1.0}
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest", identity=guest_id) as guest:
        rid = await open_room(host, guest, deadline_s=1.5)
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"})
        await until(lambda: guest.rooms[rid].state.seq == 2)
    async with open_daemon(tmp_path / "guest", identity=guest_id, tuning=tuning) as guest:
        live = guest.rooms[rid]
        assert live.state.seq == 2 and live.local_result is None
        await until(lambda: live.closed, timeout=10)
        result = await call(guest, "room.result", room_id=rid)
        assert result["status"] == "timeout" and result["local"] is True and live.state.seq == 2
        assert guest.store.get_room(rid) is not None and guest.store.get_room(rid).phase == "closed"  # type: ignore[union-attr]
