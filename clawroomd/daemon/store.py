"""Durable state of one daemon: SQLite (WAL) under the state dir, plus each room's readable folder.

Layout::

    <state_dir>/clawroomd.db            rooms, events, outbox, invites, peers (+ -wal, -shm)
    <state_dir>/rooms/<room_id>/        0700: transcript.jsonl, final_result.json, ... (files 0600)

Durability. The database runs in WAL mode. With ``durability="normal"`` (the default,
``synchronous=NORMAL``) a committed transaction survives the daemon crashing or being killed with
SIGKILL: the commit is in the WAL file as soon as ``commit`` returns. An operating-system crash or a power
cut may lose the last few committed transactions (never corrupt the database). ``durability="full"``
(``synchronous=FULL``) fsyncs the WAL on every commit so that those survive too, at ~1-10 ms per commit
depending on the disk.

The database is the truth. ``transcript.jsonl`` is a readable copy: one JSON line per event appended
*after* the event's transaction commits; if the process dies between the two, the next ``Store()``
rewrites the file from the database (``repair_transcripts``). Nothing is acknowledged to anyone before
its transaction has committed: every write method returns only after COMMIT.

The API is synchronous (SQLite calls take well under a millisecond here); the daemon calls it from its
trio thread directly. A Store is not thread-safe: use it from one thread. The one exception is
``checkpoint()``, which opens a connection of its own so that a worker thread can move the WAL into the
database (and fsync) while the daemon keeps committing; see ``defer_checkpoints()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

DB_NAME = "clawroomd.db"
TRANSCRIPT = "transcript.jsonl"
OPEN_TRANSCRIPTS = 64  # transcript files kept open for appending (most recently written rooms)
BACKSTOP_CHECKPOINT_PAGES = 10_000  # SQLite's own checkpoint, once checkpoints are deferred (default 1000)

_ROOM_ID_RE = re.compile(r"^cr_[0-9a-f]{1,64}$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Durability = Literal["normal", "full"]
Role = Literal["host", "guest"]


# --------------------------------------------------------------------------------------------- errors
class StoreError(Exception):
    """Base of the store's refusals. Nothing was written when one is raised."""


class UnknownRoom(StoreError):
    """No room with that id."""


class RoomExists(StoreError):
    """create_room with an id that is already taken."""


class SequenceError(StoreError):
    """append_event with a seq that is not last_seq + 1 (a gap or a duplicate)."""


class DuplicateSid(StoreError):
    """append_event with a submission id already used in that room."""


class BadName(StoreError, ValueError):
    """A room id or room file name that could escape the room folder or is malformed."""


class SchemaTooNew(StoreError):
    """The database was written by a newer clawroomd."""


# ----------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True, kw_only=True)
class RoomRow:
    room_id: str
    role: Role
    peer_key: bytes | None
    phase: str
    created_ms: int
    updated_ms: int
    meta: dict[str, Any]
    result: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class EventRow:
    room_id: str
    seq: int
    hash: bytes
    envelope: bytes
    kind: str
    author: str
    ts_ms: int
    sid: str | None


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    room_id: str
    sid: str
    envelope: bytes
    created_ms: int


@dataclass(frozen=True, kw_only=True)
class InviteRow:
    room_id: str
    secret_hash: bytes
    expires_ms: int
    used_ms: int | None
    guest_key: bytes | None


@dataclass(frozen=True, kw_only=True)
class PeerRow:
    peer_key: bytes
    peer_id: str
    addrs: list[str]
    last_seen_ms: int
    name: str | None


# ------------------------------------------------------------------------------------------ migrations
# MIGRATIONS[i] takes the schema from version i to version i + 1. Append only; never edit a shipped one.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE rooms (
            room_id    TEXT PRIMARY KEY,
            role       TEXT NOT NULL CHECK (role IN ('host', 'guest')),
            peer_key   BLOB,
            phase      TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            meta       TEXT NOT NULL,
            result     TEXT
        )""",
        """CREATE TABLE events (
            room_id    TEXT NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
            seq        INTEGER NOT NULL CHECK (seq >= 0),
            hash       BLOB NOT NULL,
            envelope   BLOB NOT NULL,
            kind       TEXT NOT NULL,
            author     TEXT NOT NULL,
            ts_ms      INTEGER NOT NULL,
            sid        TEXT,
            transcript TEXT NOT NULL,
            PRIMARY KEY (room_id, seq),
            UNIQUE (room_id, author, sid)  -- submit ids are scoped by author (SPEC.md section 10)
        )""",
        """CREATE TABLE outbox (
            room_id    TEXT NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
            sid        TEXT NOT NULL,
            envelope   BLOB NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (room_id, sid)
        )""",
        """CREATE TABLE invites (
            room_id     TEXT PRIMARY KEY REFERENCES rooms (room_id) ON DELETE CASCADE,
            secret_hash BLOB NOT NULL,
            expires_ms  INTEGER NOT NULL,
            used_ms     INTEGER,
            guest_key   BLOB
        )""",
        """CREATE TABLE peers (
            peer_key     BLOB PRIMARY KEY,
            peer_id      TEXT NOT NULL UNIQUE,
            addrs        TEXT NOT NULL,
            last_seen_ms INTEGER NOT NULL,
            name         TEXT
        )""",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def _dumps(value: Any) -> str:
    # Sorted keys: both sides' transcript.jsonl must be byte-identical, whatever order a dict was built in.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _transcript_line(transcript_json: str) -> bytes:
    return (transcript_json + "\n").encode()


def _check_room_id(room_id: str) -> str:
    if not isinstance(room_id, str) or not _ROOM_ID_RE.match(room_id):
        raise BadName(f"{room_id!r} is not a room id (cr_ followed by lowercase hex)")
    return room_id


def _mkdir_private(path: Path) -> None:
    """Create `path` (and parents) as 0700 folders; tighten an existing leaf folder to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------- store
class Store:
    """The daemon's database and room folders. ``Store(state_dir)``; close() or use as a context manager."""

    def __init__(self, state_dir: str | os.PathLike[str], *, durability: Durability = "normal") -> None:
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.state_dir = Path(state_dir)
        self.durability = durability
        _mkdir_private(self.state_dir)
        _mkdir_private(self.state_dir / "rooms")
        self.db_path = self.state_dir / DB_NAME
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _tx).
        self._db = sqlite3.connect(self.db_path, isolation_level=None)
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
            p = self.state_dir / name
            if p.exists():
                os.chmod(p, 0o600)
        self._depth = 0
        self._after_commit: list[list[Callable[[], None]]] = []
        self.commits = 0  # outer transactions committed, so a checkpointer can tell whether there is work
        # Opening (and checking the folder of) the transcript for every line cost more than the write.
        self._transcripts: OrderedDict[str, int] = OrderedDict()
        try:
            self._db.execute("PRAGMA busy_timeout = 5000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"could not switch {self.db_path} to WAL mode (got {mode!r})")
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self.repair_transcripts()
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle
    def close(self) -> None:
        """Close the database (idempotent)."""
        while self._transcripts:
            self._close_transcript(next(iter(self._transcripts)))
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA optimize")
        self._db.close()

    def defer_checkpoints(self, backstop_pages: int = BACKSTOP_CHECKPOINT_PAGES) -> None:
        """Leave WAL checkpoints to ``checkpoint()`` in a worker thread; SQLite's automatic one stays as a
        backstop at `backstop_pages`. By default the commit that crosses 1000 WAL pages checkpoints
        inline, fsyncs included: ~4 ms on that commit, every few hundred events."""
        self._db.execute(f"PRAGMA wal_autocheckpoint = {int(backstop_pages)}")

    def checkpoint(self) -> None:
        """Copy committed WAL content into the database file (PASSIVE: never waits for or blocks a
        writer). Thread-safe: it uses its own short-lived connection. Durability does not depend on it:
        a committed transaction is already in the WAL; a failure is logged and the backstop remains."""
        try:
            db = sqlite3.connect(self.db_path, isolation_level=None)
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                db.close()
        except sqlite3.Error as e:
            log.warning("WAL checkpoint of %s failed (retried later): %s", self.db_path, e)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        with self._tx():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if self._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                self._db.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.db_path} has schema version {current}, newer than this clawroomd understands "
                f"({SCHEMA_VERSION}); upgrade clawroomd or use another --state-dir"
            )
        for version in range(current, SCHEMA_VERSION):
            with self._tx():
                for statement in MIGRATIONS[version]:
                    self._db.execute(statement)
                self._db.execute("UPDATE schema_version SET version = ?", (version + 1,))
            log.info("migrated %s to schema version %d", self.db_path, version + 1)

    # -- transactions
    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """A transaction (BEGIN IMMEDIATE) or, nested, a savepoint. Hooks run after the outer COMMIT."""
        depth = self._depth
        self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        self._depth += 1
        self._after_commit.append([])
        try:
            yield
        except BaseException:
            self._after_commit.pop()
            self._depth -= 1
            if depth == 0:
                self._db.execute("ROLLBACK")
            else:
                self._db.execute(f"ROLLBACK TO sp{depth}")
                self._db.execute(f"RELEASE sp{depth}")
            raise
        hooks = self._after_commit.pop()
        self._depth -= 1
        if depth == 0:
            self._db.execute("COMMIT")
            self.commits += 1
            for hook in hooks:
                hook()
        else:
            self._db.execute(f"RELEASE sp{depth}")
            self._after_commit[-1].extend(hooks)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Group several writes into one atomic transaction::

            with store.transaction():
                store.append_event(...)
                store.update_room(room_id, phase="closed", result=..., now_ms=...)

        Nothing inside is committed (nor any transcript line appended) until the outer block ends
        without an exception; an exception rolls all of it back. Calls nest (savepoints).
        """
        return self._tx()

    # -- rooms
    def create_room(
        self,
        room_id: str,
        role: Role,
        meta: dict[str, Any],
        now_ms: int,
        peer_key: bytes | None = None,
        *,
        phase: str = "invited",
    ) -> RoomRow:
        _check_room_id(room_id)
        if role not in ("host", "guest"):
            raise ValueError(f"role must be 'host' or 'guest', not {role!r}")
        try:
            with self._tx():
                self._db.execute(
                    "INSERT INTO rooms (room_id, role, peer_key, phase, created_ms, updated_ms, meta, result)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (room_id, role, peer_key, phase, now_ms, now_ms, _dumps(meta)),
                )
        except sqlite3.IntegrityError:
            raise RoomExists(f"room {room_id} already exists") from None
        _mkdir_private(self.room_dir(room_id))
        return RoomRow(
            room_id=room_id, role=role, peer_key=peer_key, phase=phase,
            created_ms=now_ms, updated_ms=now_ms, meta=meta, result=None,
        )  # fmt: skip

    def update_room(
        self,
        room_id: str,
        *,
        phase: str | None = None,
        peer_key: bytes | None = None,
        meta: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        now_ms: int,
    ) -> RoomRow:
        """Set the given fields (None leaves a field unchanged) and updated_ms; returns the new row."""
        sets: list[str] = ["updated_ms = ?"]
        args: list[object] = [now_ms]
        value: object
        for column, value in (
            ("phase", phase),
            ("peer_key", peer_key),
            ("meta", None if meta is None else _dumps(meta)),
            ("result", None if result is None else _dumps(result)),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        with self._tx():
            cur = self._db.execute(f"UPDATE rooms SET {', '.join(sets)} WHERE room_id = ?", (*args, room_id))
            if cur.rowcount != 1:
                raise UnknownRoom(f"no room {room_id!r}")
            row = self.get_room(room_id)
        assert row is not None
        return row

    _ROOM_COLS = "room_id, role, peer_key, phase, created_ms, updated_ms, meta, result"

    @staticmethod
    def _room(r: tuple[Any, ...]) -> RoomRow:
        return RoomRow(
            room_id=r[0], role=r[1], peer_key=r[2], phase=r[3], created_ms=r[4], updated_ms=r[5],
            meta=json.loads(r[6]), result=None if r[7] is None else json.loads(r[7]),
        )  # fmt: skip

    def get_room(self, room_id: str) -> RoomRow | None:
        r = self._db.execute(f"SELECT {self._ROOM_COLS} FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        return None if r is None else self._room(r)

    def list_rooms(self) -> list[RoomRow]:
        """All rooms, oldest first."""
        rows = self._db.execute(f"SELECT {self._ROOM_COLS} FROM rooms ORDER BY created_ms, room_id")
        return [self._room(r) for r in rows]

    # -- events
    def append_event(
        self,
        room_id: str,
        *,
        seq: int,
        hash: bytes,
        envelope: bytes,
        kind: str,
        author: str,
        ts_ms: int,
        sid: str | None,
        transcript: dict[str, Any],
    ) -> EventRow:
        """Commit one event, then append ``transcript`` as a line of the room's transcript.jsonl.

        Refuses (nothing written) an unknown room, a seq other than last_seq + 1, a sid already used
        in the room. Returns only after COMMIT (or, inside transaction(), the event is committed with
        the outer block).
        """
        text = _dumps(transcript)
        with self._tx():
            last = self.last_seq(room_id)
            if seq != last + 1:
                if last == -1 and self.get_room(room_id) is None:
                    raise UnknownRoom(f"no room {room_id!r}")
                what = "duplicate" if seq <= last else "gap"
                raise SequenceError(f"room {room_id}: event seq {seq} is a {what} (last is {last})")
            try:
                self._db.execute(
                    "INSERT INTO events (room_id, seq, hash, envelope, kind, author, ts_ms, sid, transcript)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (room_id, seq, hash, envelope, kind, author, ts_ms, sid, text),
                )
            except sqlite3.IntegrityError as e:
                if "FOREIGN KEY" in str(e):
                    raise UnknownRoom(f"no room {room_id!r}") from None
                raise DuplicateSid(f"room {room_id}: submission id {sid!r} was already used") from None
            self._after_commit[-1].append(lambda: self._append_transcript(room_id, text))
        return EventRow(
            room_id=room_id, seq=seq, hash=hash, envelope=envelope, kind=kind, author=author,
            ts_ms=ts_ms, sid=sid,
        )  # fmt: skip

    def _append_transcript(self, room_id: str, text: str) -> None:
        # After COMMIT: a failure here must not un-acknowledge the event; repair_transcripts() fixes it.
        try:
            fd = self._transcripts.pop(room_id, None)
            if fd is None:
                directory = self.room_dir(room_id)
                _mkdir_private(directory)
                fd = os.open(directory / TRANSCRIPT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                if len(self._transcripts) >= OPEN_TRANSCRIPTS:
                    self._close_transcript(next(iter(self._transcripts)))
            self._transcripts[room_id] = fd  # now the most recently used
            os.write(fd, _transcript_line(text))
        except OSError:
            self._close_transcript(room_id)
            log.exception("could not append to the transcript of %s (repaired on next start)", room_id)

    def _close_transcript(self, room_id: str) -> None:
        fd = self._transcripts.pop(room_id, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    _EVENT_COLS = "room_id, seq, hash, envelope, kind, author, ts_ms, sid"

    @staticmethod
    def _event(r: tuple[Any, ...]) -> EventRow:
        return EventRow(room_id=r[0], seq=r[1], hash=r[2], envelope=r[3], kind=r[4], author=r[5], ts_ms=r[6], sid=r[7])

    def events(self, room_id: str, after_seq: int = -1) -> list[EventRow]:
        """The room's events with seq > after_seq, in order."""
        rows = self._db.execute(
            f"SELECT {self._EVENT_COLS} FROM events WHERE room_id = ? AND seq > ? ORDER BY seq",
            (room_id, after_seq),
        )
        return [self._event(r) for r in rows]

    def event_by_sid(self, room_id: str, sid: str, author: str) -> EventRow | None:
        r = self._db.execute(
            f"SELECT {self._EVENT_COLS} FROM events WHERE room_id = ? AND author = ? AND sid = ?",
            (room_id, author, sid),
        ).fetchone()
        return None if r is None else self._event(r)

    def last_seq(self, room_id: str) -> int:
        """The highest seq stored for the room, -1 if none (or no such room)."""
        r = self._db.execute("SELECT MAX(seq) FROM events WHERE room_id = ?", (room_id,)).fetchone()
        return -1 if r[0] is None else int(r[0])

    def repair_transcripts(self) -> list[str]:
        """Make every room's transcript.jsonl agree with the database; returns the rooms rewritten.

        A file whose complete-line count differs from the event count, or that ends in a partial line,
        is rewritten atomically from the database. Run by the constructor.
        """
        repaired = []
        counts = dict(self._db.execute("SELECT room_id, COUNT(*) FROM events GROUP BY room_id").fetchall())
        for room in self.list_rooms():
            expected = counts.get(room.room_id, 0)
            path = self.room_dir(room.room_id) / TRANSCRIPT
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data is None and expected == 0:
                continue
            if data is not None and data.count(b"\n") == expected and (not data or data.endswith(b"\n")):
                continue
            lines = self._db.execute(
                "SELECT transcript FROM events WHERE room_id = ? ORDER BY seq", (room.room_id,)
            ).fetchall()
            self._close_transcript(room.room_id)  # it would keep appending to the replaced file
            _mkdir_private(path.parent)
            atomic_write(path, b"".join(_transcript_line(t) for (t,) in lines))
            log.warning("rewrote %s from the database (%d events)", path, len(lines))
            repaired.append(room.room_id)
        return repaired

    # -- outbox (guest side: signed and submitted, not yet confirmed by the host)
    def put_outbox(self, room_id: str, sid: str, envelope: bytes, created_ms: int) -> None:
        """Remember a submitted envelope (idempotent for the same sid: the first one is kept)."""
        try:
            with self._tx():
                self._db.execute(
                    "INSERT OR IGNORE INTO outbox (room_id, sid, envelope, created_ms) VALUES (?, ?, ?, ?)",
                    (room_id, sid, envelope, created_ms),
                )
        except sqlite3.IntegrityError:
            raise UnknownRoom(f"no room {room_id!r}") from None

    def outbox(self, room_id: str) -> list[OutboxRow]:
        """Pending submissions of the room, oldest first."""
        rows = self._db.execute(
            "SELECT room_id, sid, envelope, created_ms FROM outbox WHERE room_id = ? ORDER BY created_ms, rowid",
            (room_id,),
        )
        return [OutboxRow(room_id=r[0], sid=r[1], envelope=r[2], created_ms=r[3]) for r in rows]

    def drop_outbox(self, room_id: str, sid: str) -> bool:
        """Forget a submission (confirmed or refused by the host); True if it was there."""
        with self._tx():
            cur = self._db.execute("DELETE FROM outbox WHERE room_id = ? AND sid = ?", (room_id, sid))
        return cur.rowcount == 1

    # -- invites (host side)
    def put_invite(self, room_id: str, secret_hash: bytes, expires_ms: int) -> None:
        """Create or replace the room's invite (a replaced invite is unused again)."""
        try:
            with self._tx():
                self._db.execute(
                    "INSERT OR REPLACE INTO invites (room_id, secret_hash, expires_ms, used_ms, guest_key)"
                    " VALUES (?, ?, ?, NULL, NULL)",
                    (room_id, secret_hash, expires_ms),
                )
        except sqlite3.IntegrityError:
            raise UnknownRoom(f"no room {room_id!r}") from None

    def get_invite(self, room_id: str) -> InviteRow | None:
        r = self._db.execute(
            "SELECT room_id, secret_hash, expires_ms, used_ms, guest_key FROM invites WHERE room_id = ?",
            (room_id,),
        ).fetchone()
        if r is None:
            return None
        return InviteRow(room_id=r[0], secret_hash=r[1], expires_ms=r[2], used_ms=r[3], guest_key=r[4])

    def consume_invite(self, room_id: str, guest_key: bytes, now_ms: int) -> bool:
        """Mark the invite used by `guest_key`, atomically; False if already used, expired or missing.

        The caller checks the secret first (``hmac.compare_digest`` against get_invite().secret_hash).
        Expired means ``now_ms >= expires_ms``.
        """
        with self._tx():
            cur = self._db.execute(
                "UPDATE invites SET used_ms = ?, guest_key = ?"
                " WHERE room_id = ? AND used_ms IS NULL AND expires_ms > ?",
                (now_ms, guest_key, room_id, now_ms),
            )
        return cur.rowcount == 1

    # -- peers
    def upsert_peer(
        self, peer_key: bytes, peer_id: str, addrs: list[str], last_seen_ms: int, name: str | None = None
    ) -> None:
        """Insert or update a peer; a None name keeps the stored one."""
        with self._tx():
            self._db.execute(
                "INSERT INTO peers (peer_key, peer_id, addrs, last_seen_ms, name) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (peer_key) DO UPDATE SET peer_id = excluded.peer_id, addrs = excluded.addrs,"
                " last_seen_ms = excluded.last_seen_ms, name = COALESCE(excluded.name, peers.name)",
                (peer_key, peer_id, _dumps(list(addrs)), last_seen_ms, name),
            )

    @staticmethod
    def _peer(r: tuple[Any, ...]) -> PeerRow:
        return PeerRow(peer_key=r[0], peer_id=r[1], addrs=json.loads(r[2]), last_seen_ms=r[3], name=r[4])

    def get_peer(self, peer_key: bytes) -> PeerRow | None:
        r = self._db.execute(
            "SELECT peer_key, peer_id, addrs, last_seen_ms, name FROM peers WHERE peer_key = ?", (peer_key,)
        ).fetchone()
        return None if r is None else self._peer(r)

    def get_peer_by_id(self, peer_id: str) -> PeerRow | None:
        r = self._db.execute(
            "SELECT peer_key, peer_id, addrs, last_seen_ms, name FROM peers WHERE peer_id = ?", (peer_id,)
        ).fetchone()
        return None if r is None else self._peer(r)

    def list_peers(self) -> list[PeerRow]:
        """All known peers, most recently seen first."""
        rows = self._db.execute(
            "SELECT peer_key, peer_id, addrs, last_seen_ms, name FROM peers ORDER BY last_seen_ms DESC"
        )
        return [self._peer(r) for r in rows]

    # -- room folders
    def room_dir(self, room_id: str) -> Path:
        """``<state_dir>/rooms/<room_id>`` (not created here; create_room and the writers create it)."""
        return self.state_dir / "rooms" / _check_room_id(room_id)

    def write_room_file(self, room_id: str, name: str, data: bytes) -> Path:
        """Atomically write ``rooms/<room_id>/<name>`` (0600; folder 0700); returns its path.

        `name` is a plain file name (letters, digits, ``._-``, not starting with a dot); anything that
        could leave the folder raises BadName.
        """
        if not isinstance(name, str) or not _FILE_NAME_RE.match(name):
            raise BadName(f"{name!r} is not an allowed room file name")
        directory = self.room_dir(room_id)
        _mkdir_private(directory)
        path = directory / name
        atomic_write(path, data)
        return path

    def remove_room_file(self, room_id: str, name: str) -> bool:
        """Delete ``rooms/<room_id>/<name>`` if present (e.g. pending_question.json); True if it was."""
        if not isinstance(name, str) or not _FILE_NAME_RE.match(name):
            raise BadName(f"{name!r} is not an allowed room file name")
        try:
            os.unlink(self.room_dir(room_id) / name)
        except FileNotFoundError:
            return False
        return True
