"""What a daemon finds at start, beyond tests/test_restore_checks.py and tests/test_store_integrity.py: a
truncated database file, a truncated transcript.jsonl, and a database that lost the last events of a room
whose transcript.jsonl still holds them (an older copy restored from a backup, or a -wal file cut short).

Each ends in a clear error that changes nothing, or in a repair from the database that says so in the log;
never in a silent overwrite. The last case used to be "repaired": the transcript lost the lines the
database lacked (the only copy of those events on this machine), and a host would then have signed
other events under the same seqs as the ones its guest already holds.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_restore_checks import GOOD, build_state, files, run_daemon

from clawroomd.daemon.main import EXIT_CANNOT_START
from clawroomd.daemon.store import StateMismatch, Store
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
OTHER = "cr_00000000000000b1"


def start_error(state: Path) -> str:
    """Start a daemon on `state`: it must exit 4 with one error line, changing no file but its lock."""
    (state / "clawroomd.lock").touch(mode=0o600)
    before = files(state)
    out = run_daemon(state)
    assert out.returncode == EXIT_CANNOT_START, out.stderr
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert len(errors) == 1 and "cannot start" in errors[0] and "Traceback" not in out.stderr, out.stderr
    after = files(state)
    for snapshot in (before, after):
        snapshot.pop("clawroomd.lock")
    assert after == before
    return errors[0]


@pytest.mark.parametrize("keep", ["half", "one page less", "header and a bit", "part of the header"])
def test_a_truncated_database_file_is_refused_untouched(tmp_path: Path, keep: str) -> None:
    state = tmp_path / "state"
    build_state(state, (GOOD, OTHER))
    db = state / "clawroomd.db"
    size = db.stat().st_size
    os.truncate(db, {"half": size // 2, "one page less": size - 4096, "header and a bit": 1000}.get(keep, 50))
    error = start_error(state)
    assert "is damaged" in error and "restore it" in error


@pytest.mark.parametrize("cut", ["mid-line", "whole lines", "to nothing"])
def test_a_truncated_transcript_is_rewritten_from_the_database_and_the_log_says_so(tmp_path: Path, cut: str) -> None:
    daemon = DaemonProcess(tmp_path / "d", name="host")
    build_state(daemon.state_dir, (GOOD, OTHER))
    path = daemon.state_dir / "rooms" / GOOD / "transcript.jsonl"
    whole = path.read_bytes()
    lines = whole.splitlines(keepends=True)
    path.write_bytes({"mid-line": whole[: len(whole) - len(lines[-1]) // 2], "whole lines": b"".join(lines[:2])}
                     .get(cut, b""))  # fmt: skip
    daemon.start()
    try:
        assert daemon.call("daemon.info")["rooms"] == 2
        assert daemon.call("room.status", room_id=GOOD)["seq"] == 4
        assert path.read_bytes() == whole
    finally:
        daemon.stop()
    assert f"rewrote {path} from the database (5 events)" in daemon.log_path.read_text()


def test_a_database_older_than_a_transcript_is_refused_and_the_transcript_kept(tmp_path: Path) -> None:
    """An older copy of the database (restored from a backup taken mid-room) next to the room's folder."""
    state = tmp_path / "state"
    build_state(state, (GOOD, OTHER))
    backup = tmp_path / "backup"
    build_state(backup, (GOOD, OTHER))
    with Store(backup) as store:  # the backup was taken when GOOD held only its first three events
        store._db.execute("DELETE FROM events WHERE room_id = ? AND seq > 2", (GOOD,))
    shutil.copyfile(backup / "clawroomd.db", state / "clawroomd.db")
    error = start_error(state)
    assert "lacks the last events of 1 room" in error and GOOD in error and "restore clawroomd.db" in error


def test_a_wal_cut_short_after_a_crash_is_refused_and_the_transcript_kept(tmp_path: Path) -> None:
    """A daemon killed with its commits still in the -wal file (as kill -9 leaves it), whose -wal then lost
    its tail (a disk that lost the last writes, a copy taken half-way)."""
    state = tmp_path / "state"
    build_state(state, (OTHER,))
    with Store(state) as store:
        store.create_room(GOOD, "host", {"topic": "t"}, 1, phase="active")
        # the crash: a copy of the state dir while the store is open, its -wal holding every commit since
        from test_restore_checks import room_events

        wal = state / "clawroomd.db-wal"
        for event in room_events(GOOD):
            h = event.header
            store.append_event(GOOD, seq=h.seq, hash=event.hash, envelope=event.envelope, kind=event.kind,
                               author=h.author, ts_ms=h.ts, sid=h.sid, transcript=event.to_json())  # fmt: skip
            if h.seq == 2:
                cut = wal.stat().st_size  # the -wal up to the commit of event 2
        crashed = tmp_path / "crashed"
        shutil.copytree(state, crashed)
    os.truncate(crashed / "clawroomd.db-wal", cut + 100)  # and a torn frame after it
    transcript = (crashed / "rooms" / GOOD / "transcript.jsonl").read_bytes()
    assert transcript.count(b"\n") == 5
    with pytest.raises(StateMismatch, match=rf"lacks the last events of 1 room.*{GOOD}: events 3\.\.4"):
        Store(crashed)
    # Closing the refused database folds the -wal's whole commits into the database file (SQLite does that
    # when its last connection closes), so here the files' bytes may change; their content does not.
    out = run_daemon(crashed)
    assert out.returncode == EXIT_CANNOT_START and "lacks the last events" in out.stderr, out.stderr
    assert (crashed / "rooms" / GOOD / "transcript.jsonl").read_bytes() == transcript
    db = sqlite3.connect(crashed / "clawroomd.db")
    assert db.execute("SELECT COUNT(*) FROM events WHERE room_id = ?", (GOOD,)).fetchone() == (3,)
    db.close()
