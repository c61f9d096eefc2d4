"""The store when the disk refuses writes, and when the state it opens is damaged or does not match.

Disk full is made two ways, both real: SQLite's own page limit (``PRAGMA max_page_count`` on the Store's
connection, its private ``_db``: the next write needing a page fails with SQLITE_FULL), and a small
tmpfs filled to the last byte (``tests/tmpfs.py``; skipped with a reason where mounting is not allowed).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from tmpfs import fill, tmpfs

from clawroomd.daemon.store import DatabaseDamaged, StateMismatch, StorageFailed, Store

ROOM = "cr_0123abcd"
BIG = "€" * 20_000  # 60 KB of transcript: needs new pages


def add(store: Store, seq: int, text: str = "hé", room: str = ROOM) -> None:
    store.append_event(
        room, seq=seq, hash=bytes([seq]) * 32, envelope=text.encode(), kind="message", author="host",
        ts_ms=1000 + seq, sid=f"s{seq}", transcript={"seq": seq, "text": text},
    )  # fmt: skip


def transcript_seqs(store: Store, room: str = ROOM) -> list[int]:
    path = store.room_dir(room) / "transcript.jsonl"
    return [json.loads(line)["seq"] for line in path.read_text().splitlines()]


def db_transcript(store: Store, room: str = ROOM) -> bytes:
    rows = store._db.execute("SELECT transcript FROM events WHERE room_id = ? ORDER BY seq", (room,))
    return b"".join((t + "\n").encode() for (t,) in rows)


# ------------------------------------------------------------------------------------------ disk full
def test_a_full_database_refuses_the_whole_transaction_and_works_again(tmp_path: Path) -> None:
    with Store(tmp_path / "st") as s:
        s.create_room(ROOM, "host", {}, 1)
        add(s, 0)
        pages = s._db.execute("PRAGMA page_count").fetchone()[0]
        s._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageFailed, match="disk full") as err, s.transaction():
            s.update_room(ROOM, phase="active", now_ms=2)
            add(s, 1, BIG)
        assert err.value.reason == "disk full"
        assert not s._db.in_transaction  # the next BEGIN works
        assert s.last_seq(ROOM) == 0 and s.get_room(ROOM).phase == "invited"  # type: ignore[union-attr]
        assert transcript_seqs(s) == [0]
        assert s.health == "failing: disk full" and not s.healthy
        s._db.execute("PRAGMA max_page_count = 1073741823")
        add(s, 1, BIG)  # no restart, no reopen
        assert s.health == "ok" and s.last_seq(ROOM) == 1 and transcript_seqs(s) == [0, 1]


def test_a_full_disk_at_commit_and_at_the_transcript(tmp_path: Path) -> None:
    state = tmp_path / "st"
    with tmpfs(state, 4096):
        s = Store(state)
        try:
            s.create_room(ROOM, "host", {}, 1)
            add(s, 0)
            filler = fill(state)
            for seq in range(1, 200):  # the WAL reuses pages it has; sooner or later it must grow
                try:
                    add(s, seq, BIG)
                except StorageFailed as e:
                    assert e.reason == "disk full"
                    break
            else:
                pytest.fail("a full disk never refused a commit")
            assert not s._db.in_transaction and s.last_seq(ROOM) == seq - 1
            assert s.health == "failing: disk full"
            with pytest.raises(StorageFailed):  # still full: refused again, cleanly
                add(s, seq, BIG)
            filler.unlink()
            assert s.recover() is True and s.health == "ok"  # stale transcripts rewritten, probe write works
            add(s, seq, BIG)
            assert s.last_seq(ROOM) == seq
            assert (s.room_dir(ROOM) / "transcript.jsonl").read_bytes() == db_transcript(s)
        finally:
            s.close()


def test_a_transcript_the_disk_refuses_is_rewritten_when_space_returns(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir(mode=0o700)
    with Store(state) as s:
        s.create_room(ROOM, "host", {}, 1)
        with tmpfs(s.room_dir(ROOM), 64) as folder:  # the room's folder on a disk of its own
            try:
                add(s, 0)
                filler = fill(folder)
                seq = 1
                while s.healthy and seq < 50:  # committed in the database; the line cannot be appended
                    add(s, seq, "x" * 3000)
                    seq += 1
                assert s.health == "failing: disk full" and s.last_seq(ROOM) == seq - 1
                add(s, seq, "more")  # a stale file is not appended to (it would go on with a hole)
                assert s.recover() is False  # still full
                filler.unlink()
                assert s.recover() is True and s.health == "ok"
                assert (folder / "transcript.jsonl").read_bytes() == db_transcript(s)
                add(s, seq + 1, "after")
                assert transcript_seqs(s) == list(range(seq + 2))
            finally:
                s.close()


# ----------------------------------------------------------------------------------- state at start
def make_state(path: Path, rooms: tuple[str, ...] = (ROOM,)) -> None:
    with Store(path) as s:
        for room in rooms:
            s.create_room(room, "host", {}, 1)
            for seq in range(3):
                add(s, seq, f"line {seq}", room=room)


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_transcript_whose_content_differs_is_rewritten(tmp_path: Path) -> None:
    make_state(tmp_path / "st", (ROOM, "cr_00000002", "cr_00000003"))
    edited = tmp_path / "st" / "rooms" / ROOM / "transcript.jsonl"
    edited.write_bytes(edited.read_bytes().replace(b"line 1", b"line 9"))  # same line count, other words
    extra = tmp_path / "st" / "rooms" / "cr_00000002" / "transcript.jsonl"
    extra.write_bytes(extra.read_bytes() + b'{"seq":3}\n')
    with Store(tmp_path / "st", repair=False) as s:
        assert sorted(s.repair_transcripts(skip={"cr_00000002"})) == [ROOM]
        assert edited.read_bytes() == db_transcript(s)
        assert extra.read_bytes() != db_transcript(s, "cr_00000002")  # skipped: left as it was
    with Store(tmp_path / "st") as s:
        assert extra.read_bytes() == db_transcript(s, "cr_00000002")
        assert s.repair_transcripts() == []


@pytest.mark.parametrize(
    "damage", ["garbage", "zeroed", "foreign"],
)
def test_a_damaged_or_foreign_database_is_refused_untouched(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "st"
    make_state(state)
    db = state / "clawroomd.db"
    for suffix in ("-wal", "-shm"):
        (state / f"clawroomd.db{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "zeroed":
        db.write_bytes(bytes(db.stat().st_size))
    else:
        db.unlink()
        other = sqlite3.connect(db)
        other.execute("CREATE TABLE notes (text TEXT)")
        other.commit()
        other.close()
    before = snapshot(state)
    with pytest.raises(DatabaseDamaged, match="not a clawroomd database"):
        Store(state)
    assert snapshot(state) == before


@pytest.mark.parametrize("loss", ["deleted", "emptied", "older copy"])
def test_a_database_that_lacks_rooms_on_disk_is_refused(tmp_path: Path, loss: str) -> None:
    state = tmp_path / "st"
    if loss == "older copy":
        make_state(state, ("cr_00000001",))
        Store(state).close()
        old = snapshot(state)
        make_state(state, ("cr_00000002",))  # a room created after the "backup"
        for name, data in old.items():
            if name.startswith("clawroomd.db"):
                (state / name).write_bytes(data)
        for suffix in ("-wal", "-shm"):
            if f"clawroomd.db{suffix}" not in old:
                (state / f"clawroomd.db{suffix}").unlink(missing_ok=True)
    else:
        make_state(state)
        for suffix in ("-wal", "-shm"):
            (state / f"clawroomd.db{suffix}").unlink(missing_ok=True)
        if loss == "deleted":
            (state / "clawroomd.db").unlink()
        else:
            (state / "clawroomd.db").write_bytes(b"")
    before = snapshot(state)
    with pytest.raises(StateMismatch, match=r"holds the transcripts of 1 room.*restore clawroomd\.db"):
        Store(state)
    assert snapshot(state) == before  # nothing created, nothing overwritten
