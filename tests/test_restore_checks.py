"""A real daemon starting on damaged or tampered state: a damaged or foreign database and a database that
lacks rooms on disk are refused with exit code 4 and one line (nothing changed); an edited event is found
at restore (hash links always, the head's signature) and that room is not served while the others are;
a transcript.jsonl whose content differs from the database is rewritten."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from roompair import GUEST, HOST, spec

from clawroomd.client import ApiError
from clawroomd.core.envelope import SignedEvent
from clawroomd.core.events import Joined, Message
from clawroomd.core.room import GuestRoom, HostRoom
from clawroomd.daemon.main import EXIT_CANNOT_START
from clawroomd.daemon.store import Store
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
GOOD, EDITED_HEAD, EDITED_MIDDLE = "cr_00000000000000a1", "cr_00000000000000a2", "cr_00000000000000a3"


def room_events(room_id: str) -> list[SignedEvent]:
    """A real room between HOST and GUEST: created, joined, three messages (the last the host's)."""
    host = HostRoom.create(HOST, room_id=room_id, spec=spec(), now_ms=1_000, mono_ms=1_000)
    guest = GuestRoom(GUEST, room_id=room_id, host_key=HOST.public_key)
    guest.receive(host.log[0].envelope, now_ms=5_000)
    env = guest.prepare(Joined(label="g"), sid="join", now_ms=2_000).events[0].envelope
    host.receive(env, now_ms=2_000, mono_ms=2_000, from_key=GUEST.public_key)
    host.send(Message(text="hello one"), sid="m1", now_ms=3_000, mono_ms=3_000)
    guest.receive(host.log[1].envelope, now_ms=5_000)
    guest.receive(host.log[2].envelope, now_ms=5_000)
    env = guest.prepare(Message(text="hello two"), sid="m2", now_ms=4_000).events[0].envelope
    host.receive(env, now_ms=4_000, mono_ms=4_000, from_key=GUEST.public_key)
    host.send(Message(text="hello three"), sid="m3", now_ms=5_000, mono_ms=5_000)
    return host.log


def build_state(state: Path, rooms: tuple[str, ...] = (GOOD, EDITED_HEAD, EDITED_MIDDLE)) -> None:
    state.mkdir(mode=0o700, parents=True)
    fd = os.open(state / "identity.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, HOST.seed())
    os.close(fd)
    with Store(state) as store:
        for room_id in rooms:
            store.create_room(room_id, "host", {"topic": "t"}, 1, phase="active")
            with store.transaction():
                for e in room_events(room_id):
                    h = e.header
                    store.append_event(room_id, seq=h.seq, hash=e.hash, envelope=e.envelope, kind=e.kind,
                                       author=h.author, ts_ms=h.ts, sid=h.sid, transcript=e.to_json())  # fmt: skip
                store.update_room(room_id, peer_key=GUEST.public_key, now_ms=2)


def edit_event(state: Path, room_id: str, seq: int, old: bytes, new: bytes) -> None:
    """Change bytes inside one stored envelope and fix its stored hash, as a careful tamperer would."""
    db = sqlite3.connect(state / "clawroomd.db")
    (env,) = db.execute("SELECT envelope FROM events WHERE room_id = ? AND seq = ?", (room_id, seq)).fetchone()
    assert env.count(old) == 1 and len(old) == len(new)
    env = env.replace(old, new)
    db.execute("UPDATE events SET envelope = ?, hash = ? WHERE room_id = ? AND seq = ?",
               (env, hashlib.sha256(env).digest(), room_id, seq))  # fmt: skip
    db.commit()
    db.close()


def files(state: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}


def run_daemon(state: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "XDG_RUNTIME_DIR")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(state), "--listen", "127.0.0.1:0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("damage", ["garbage", "zeroed", "interior page", "deleted", "emptied", "foreign"])
def test_damaged_or_missing_database_exits_4_with_one_line_and_changes_nothing(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    build_state(state, (GOOD,))
    db = state / "clawroomd.db"
    match damage:
        case "garbage":
            db.write_bytes(os.urandom(db.stat().st_size))
        case "zeroed":
            db.write_bytes(bytes(db.stat().st_size))
        case "interior page":  # the header is fine: only SQLite's own check finds it
            data = bytearray(db.read_bytes())
            data[2 * 4096 : 3 * 4096] = os.urandom(4096)
            db.write_bytes(bytes(data))
        case "deleted":
            db.unlink()
        case "emptied":
            db.write_bytes(b"")
        case "foreign":
            db.unlink()
            other = sqlite3.connect(db)
            other.execute("CREATE TABLE notes (text TEXT)")
            other.commit()
            other.close()
    (state / "clawroomd.lock").touch(mode=0o600)  # a daemon that ran here before left its lock file
    before = files(state)
    out = run_daemon(state)
    assert out.returncode == EXIT_CANNOT_START, out.stderr
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert len(errors) == 1 and "cannot start" in errors[0] and "Traceback" not in out.stderr, out.stderr
    expected = {"deleted": "has no record of", "emptied": "has no record of", "interior page": "is damaged"}.get(
        damage, "not a clawroomd database"
    )
    assert expected in errors[0] and "restore" in errors[0] + out.stderr
    after = files(state)
    after.pop("clawroomd.lock")  # rewritten with the pid: the one file a start may touch
    before.pop("clawroomd.lock")
    assert after == before  # no new database, nothing overwritten, no keys created


def test_edited_events_are_found_at_restore_and_only_those_rooms_are_not_served(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path / "d", name="host")
    state = daemon.state_dir
    build_state(state)
    edit_event(state, EDITED_HEAD, 4, b"hello three", b"hello THREE")  # the head: only its signature tells
    edit_event(state, EDITED_MIDDLE, 2, b"hello one", b"hello ONE")  # the next event's prev no longer matches
    good_path = state / "rooms" / GOOD / "transcript.jsonl"
    good = good_path.read_bytes()
    good_path.write_bytes(good.replace(b"hello two", b"hello 2!!"))  # same line count, other content
    kept = {r: (state / "rooms" / r / "transcript.jsonl").read_bytes() for r in (EDITED_HEAD, EDITED_MIDDLE)}
    daemon.start()
    try:
        info = daemon.call("daemon.info")
        assert info["damaged_rooms"] == [EDITED_HEAD, EDITED_MIDDLE] and info["rooms"] == 1
        assert daemon.call("room.status", room_id=GOOD)["seq"] == 4
        assert [r["room_id"] for r in daemon.call("room.list")["rooms"]] == [GOOD]
        for room_id, why in ((EDITED_HEAD, "bad_signature"), (EDITED_MIDDLE, "bad_chain")):
            with pytest.raises(ApiError) as err:
                daemon.call("room.transcript", room_id=room_id)
            assert err.value.code == "storage_failed" and "failed verification" in str(err.value)
            assert why in err.value.data["damaged"], err.value.data
        assert good_path.read_bytes() == good  # rewritten from the database: its content differed
        for room_id, data in kept.items():  # the damaged rooms' files are evidence: left as they were
            assert (state / "rooms" / room_id / "transcript.jsonl").read_bytes() == data
    finally:
        daemon.stop()
    log = daemon.log_path.read_text()
    assert "Traceback" not in log and log.count("failed verification and is not served") == 2
