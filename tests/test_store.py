"""The daemon's SQLite store: rows, sequence checks, transcripts and their repair, files, durability."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clawroomd.daemon.store import (
    SCHEMA_VERSION,
    BadName,
    DuplicateSid,
    RoomExists,
    SchemaTooNew,
    SequenceError,
    Store,
    StoreError,
    UnknownRoom,
)

ROOM = "cr_0123abcd"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def add_event(store: Store, seq: int, *, room: str = ROOM, sid: str | None = None, author: str = "host") -> None:
    store.append_event(
        room, seq=seq, hash=bytes([seq]) * 32, envelope=b"env%d" % seq, kind="message", author=author,
        ts_ms=1000 + seq, sid=sid if sid is not None else f"s{seq}", transcript={"seq": seq, "text": "hé"},
    )  # fmt: skip


def transcript(store: Store, room: str = ROOM) -> list[dict[str, object]]:
    return [json.loads(line) for line in (store.room_dir(room) / "transcript.jsonl").read_text().splitlines()]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "state") as s:
        yield s


def test_open_sets_wal_modes_and_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "st") as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert s._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s.schema_version == SCHEMA_VERSION
    with Store(tmp_path / "st", durability="full") as s:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert mode(tmp_path / "st") == 0o700
    assert mode(tmp_path / "st" / "clawroomd.db") == 0o600


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "st").close()
    db = sqlite3.connect(tmp_path / "st" / "clawroomd.db")
    db.execute("UPDATE schema_version SET version = 999")
    db.commit()
    db.close()
    with pytest.raises(SchemaTooNew, match="newer than this clawroomd"):
        Store(tmp_path / "st")


def test_rooms_roundtrip(store: Store) -> None:
    row = store.create_room(ROOM, "host", {"topic": "price"}, 5)
    assert row.phase == "invited" and row.peer_key is None and row.result is None
    assert store.get_room(ROOM) == row
    with pytest.raises(RoomExists):
        store.create_room(ROOM, "guest", {}, 6)
    new = store.update_room(ROOM, phase="active", peer_key=b"k" * 32, now_ms=9)
    assert (new.phase, new.peer_key, new.meta, new.created_ms, new.updated_ms) == (
        "active", b"k" * 32, {"topic": "price"}, 5, 9,
    )  # fmt: skip
    new = store.update_room(ROOM, result={"status": "agreement_reached"}, meta={"x": 1}, now_ms=10)
    assert new.result == {"status": "agreement_reached"} and new.meta == {"x": 1} and new.phase == "active"
    store.create_room("cr_000000ff", "guest", {}, 7, peer_key=b"p" * 32, phase="joining")
    assert [r.room_id for r in store.list_rooms()] == [ROOM, "cr_000000ff"]
    assert store.get_room("cr_00000000") is None
    with pytest.raises(UnknownRoom):
        store.update_room("cr_00000000", phase="x", now_ms=1)
    with pytest.raises(ValueError):
        store.create_room("cr_00000001", "admin", {}, 1)  # type: ignore[arg-type]


def test_events_sequence_and_transcript(store: Store) -> None:
    store.create_room(ROOM, "host", {}, 1)
    with pytest.raises(SequenceError, match="gap"):
        add_event(store, 1)
    add_event(store, 0)
    add_event(store, 1)
    with pytest.raises(SequenceError, match="duplicate"):
        add_event(store, 1, sid="other")
    with pytest.raises(DuplicateSid):
        add_event(store, 2, sid="s1")
    with pytest.raises(UnknownRoom):
        add_event(store, 0, room="cr_0000dead")
    assert store.last_seq(ROOM) == 1 and store.last_seq("cr_0000dead") == -1
    assert [e.seq for e in store.events(ROOM)] == [0, 1]
    assert [e.seq for e in store.events(ROOM, after_seq=0)] == [1]
    ev = store.event_by_sid(ROOM, "s1", "host")
    assert ev is not None and ev.envelope == b"env1" and ev.hash == b"\x01" * 32 and ev.ts_ms == 1001
    assert store.event_by_sid(ROOM, "nope", "host") is None
    assert store.event_by_sid(ROOM, "s1", "guest") is None
    add_event(store, 2, sid="s1", author="guest")  # sids are scoped by author: the guest may reuse one
    # the refused appends wrote nothing, to the DB or the transcript
    assert transcript(store) == [{"seq": 0, "text": "hé"}, {"seq": 1, "text": "hé"}, {"seq": 2, "text": "hé"}]
    assert mode(store.room_dir(ROOM) / "transcript.jsonl") == 0o600
    assert mode(store.room_dir(ROOM)) == 0o700


def test_transaction_groups_writes_and_defers_transcript(store: Store) -> None:
    store.create_room(ROOM, "host", {}, 1)
    with pytest.raises(RuntimeError), store.transaction():
        add_event(store, 0)
        store.update_room(ROOM, phase="closed", now_ms=2)
        raise RuntimeError("boom")
    assert store.last_seq(ROOM) == -1
    assert store.get_room(ROOM).phase == "invited"  # type: ignore[union-attr]
    assert not (store.room_dir(ROOM) / "transcript.jsonl").exists()
    with store.transaction():
        add_event(store, 0)
        with pytest.raises(SequenceError), store.transaction():
            add_event(store, 1)
            add_event(store, 5)  # nested failure rolls back only the savepoint
        assert not (store.room_dir(ROOM) / "transcript.jsonl").exists()
    assert store.last_seq(ROOM) == 0
    assert transcript(store) == [{"seq": 0, "text": "hé"}]


def test_repair_transcripts_rewrites_short_or_torn_files(tmp_path: Path) -> None:
    with Store(tmp_path / "st") as s:
        s.create_room(ROOM, "host", {}, 1)
        s.create_room("cr_00000002", "host", {}, 1)
        s.create_room("cr_00000003", "host", {}, 1)
        for i in range(3):
            add_event(s, i)
            add_event(s, i, room="cr_00000002")
        assert s.repair_transcripts() == []
        path = s.room_dir(ROOM) / "transcript.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:2]))  # crash between commit and append
        path2 = s.room_dir("cr_00000002") / "transcript.jsonl"
        path2.write_bytes(path2.read_bytes() + b'{"torn')  # crash mid-append
    with Store(tmp_path / "st") as s:
        assert [e["seq"] for e in transcript(s)] == [0, 1, 2]
        assert [e["seq"] for e in transcript(s, "cr_00000002")] == [0, 1, 2]
        assert mode(path) == 0o600
        assert not (s.room_dir("cr_00000003") / "transcript.jsonl").exists()
        assert not [p for p in s.room_dir(ROOM).iterdir() if p.name.endswith(".tmp")]


def test_committed_events_survive_kill_9(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from clawroomd.daemon.store import Store
        s = Store({str(tmp_path / "st")!r})
        s.create_room({ROOM!r}, "host", {{}}, 1)
        for i in range(5):
            s.append_event({ROOM!r}, seq=i, hash=b"h", envelope=b"e", kind="k", author="a", ts_ms=i,
                           sid=str(i), transcript={{"seq": i}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent, timeout=30)
    assert proc.returncode == -9
    with Store(tmp_path / "st") as s:
        assert s.last_seq(ROOM) == 4
        assert [e["seq"] for e in transcript(s)] == [0, 1, 2, 3, 4]


def test_outbox(store: Store) -> None:
    store.create_room(ROOM, "guest", {}, 1)
    store.put_outbox(ROOM, "a", b"A", 10)
    store.put_outbox(ROOM, "b", b"B", 11)
    store.put_outbox(ROOM, "a", b"A2", 12)  # retry of the same sid keeps the first
    assert [(o.sid, o.envelope) for o in store.outbox(ROOM)] == [("a", b"A"), ("b", b"B")]
    assert store.drop_outbox(ROOM, "a") is True
    assert store.drop_outbox(ROOM, "a") is False
    assert [o.sid for o in store.outbox(ROOM)] == ["b"]
    with pytest.raises(UnknownRoom):
        store.put_outbox("cr_0000dead", "x", b"", 1)


def test_invites_consume_once(store: Store) -> None:
    store.create_room(ROOM, "host", {}, 1)
    assert store.consume_invite(ROOM, b"g" * 32, 5) is False  # none yet
    store.put_invite(ROOM, b"H" * 32, expires_ms=100)
    inv = store.get_invite(ROOM)
    assert inv is not None and inv.secret_hash == b"H" * 32 and inv.used_ms is None
    assert store.consume_invite(ROOM, b"g" * 32, 50) is True
    assert store.consume_invite(ROOM, b"x" * 32, 51) is False
    inv = store.get_invite(ROOM)
    assert inv is not None and inv.used_ms == 50 and inv.guest_key == b"g" * 32
    store.put_invite(ROOM, b"J" * 32, expires_ms=100)
    assert store.consume_invite(ROOM, b"g" * 32, 100) is False  # expired
    with pytest.raises(UnknownRoom):
        store.put_invite("cr_0000dead", b"", 1)


def test_peers(store: Store) -> None:
    store.see_peer("PEER-A", name="Alice", addrs=["10.0.0.1:7643"], now_ms=5)
    store.met_peer("PEER-B", b"q" * 32, 9)
    store.see_peer("PEER-A", name="Alice2", addrs=["10.0.0.2:7643"], now_ms=10)
    p = store.get_peer("PEER-A")
    assert p is not None and p.addrs == ["10.0.0.2:7643"] and p.name == "Alice2"
    assert (p.first_seen_ms, p.last_seen_ms, p.met_ms, p.state, p.peer_key) == (5, 10, None, "up", None)
    store.set_peer_state("PEER-A", "gone")
    store.met_peer("PEER-A", b"k" * 32, 20)
    store.met_peer("PEER-A", b"k" * 32, 30)  # met once: the first time stays
    p = store.get_peer("PEER-A")
    assert p is not None and (p.state, p.met_ms, p.peer_key, p.last_seen_ms) == ("gone", 20, b"k" * 32, 10)
    b = store.get_peer("PEER-B")
    assert b is not None and (b.state, b.addrs, b.met_ms) == (None, [], 9)
    assert [p.peer_id for p in store.list_peers()] == ["PEER-A", "PEER-B"]
    assert store.get_peer("PEER-Z") is None


def test_peers_migrate_from_schema_1(tmp_path: Path) -> None:
    """A version-1 database (peers keyed by key, no first seen) keeps its peers through the migration."""
    from clawroomd.daemon.store import MIGRATIONS

    tmp_path.chmod(0o700)
    db = sqlite3.connect(tmp_path / "clawroomd.db")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO peers VALUES (?, 'PEER-A', '[\"10.0.0.1:7643\"]', 7, 'Alice')", (b"k" * 32,))
    db.commit()
    db.close()
    with Store(tmp_path) as s:
        p = s.get_peer("PEER-A")
        assert p is not None and (p.peer_key, p.name, p.first_seen_ms, p.last_seen_ms) == (b"k" * 32, "Alice", 7, 7)


@pytest.mark.parametrize("name", ["../x", "..", ".hidden", "a/b", "", "x" * 200, "a\x00b"])
def test_room_file_names_cannot_escape(store: Store, name: str) -> None:
    store.create_room(ROOM, "host", {}, 1)
    with pytest.raises(BadName):
        store.write_room_file(ROOM, name, b"x")


@pytest.mark.parametrize("room_id", ["../etc", "cr_", "cr_../x", "CR_00", "cr_xyz", "cr_00/..", 5])
def test_room_ids_validated(store: Store, room_id: str) -> None:
    with pytest.raises(BadName):
        store.room_dir(room_id)
    assert issubclass(BadName, StoreError)


def test_write_room_file_atomic_and_private(store: Store) -> None:
    path = store.write_room_file(ROOM, "final_result.json", b"{}")
    assert path == store.room_dir(ROOM) / "final_result.json"
    assert path.read_bytes() == b"{}" and mode(path) == 0o600 and mode(path.parent) == 0o700
    os.chmod(path, 0o644)
    store.write_room_file(ROOM, "final_result.json", b'{"a":1}')
    assert path.read_bytes() == b'{"a":1}' and mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["final_result.json"]
    assert store.remove_room_file(ROOM, "final_result.json") is True
    assert store.remove_room_file(ROOM, "final_result.json") is False


@pytest.mark.parametrize(
    "bad",
    ["cr_ff", "cr_" + "a" * 33, "cr_" + "0" * 64, "cr_0123abcd\n", "cr_0123ABCD", "cr_../x", "", "room"],
)
def test_store_refuses_a_room_id_the_protocol_refuses(store: Store, bad: str) -> None:
    """One room-id rule: an id the events refuse (SPEC §5) gets no row and no folder in the store either."""
    from clawroomd.core.errors import LocalProtocolError
    from clawroomd.core.events import Header

    with pytest.raises(LocalProtocolError):
        Header(room=bad, seq=0, prev=bytes(32), author="host", key=bytes(32), ts=0, sid="create")
    with pytest.raises(BadName):
        store.create_room(bad, "host", {}, 1)
    with pytest.raises(BadName):
        store.room_dir(bad)
    assert store.list_rooms() == []
    assert not (store.state_dir / "rooms").exists() or list((store.state_dir / "rooms").iterdir()) == []
