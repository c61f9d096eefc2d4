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

When the disk refuses a write (full, I/O error, read-only) the transaction is rolled back whole and
``StorageFailed`` is raised: the database stays as it was, and the store keeps working once writing
works again (no restart). ``health`` says ``"ok"`` or ``"failing: <reason>"``; the first failure of each
kind is logged once as an error, the recovery as a warning. A transcript line that cannot be appended
(after its COMMIT) marks that room's file stale; it is rewritten from the database at the room's next
event or at ``recover()``.

Opening checks that the state is ours and whole: the state dir must be private (see
``clawroomd.private_files``; it is never chmod-ed), the database must be a clawroomd database
(``DatabaseDamaged`` otherwise), and it must know every room whose transcript is in ``rooms/``
(``StateMismatch`` otherwise: a deleted, emptied or older database is not silently started empty), and
every event a room's transcript holds (``StateMismatch``: its lines are not cut back to an older database).

The API is synchronous (SQLite calls take well under a millisecond here); the daemon calls it from its
trio thread directly. A Store is not thread-safe: use it from one thread. The one exception is
``checkpoint()``, which opens a connection of its own so that a worker thread can move the WAL into the
database (and fsync) while the daemon keeps committing; see ``defer_checkpoints()``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.events import Role
from ..core.ids import ROOM_ID_RULE, is_room_id
from ..private_files import UnsafeFolder, atomic_write, ensure_private_dir
from .errors import ApiError

log = logging.getLogger(__name__)

DB_NAME = "clawroomd.db"
TRANSCRIPT = "transcript.jsonl"
OPEN_TRANSCRIPTS = 64  # transcript files kept open for appending (most recently written rooms)
BACKSTOP_CHECKPOINT_PAGES = 10_000  # SQLite's own checkpoint, once checkpoints are deferred (default 1000)
LOG_EVERY_S = 60.0  # at most one "storage failing" (and one "works again") line per area this often
RECOVERY_FREE_BYTES = 1 << 20  # after "disk full", free space that counts as space having returned

_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Durability = Literal["normal", "full"]


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


class StorageFailed(StoreError, ApiError):
    """The disk refused a write (full, I/O error, read-only). The transaction was rolled back: the
    database holds exactly what it held before. `reason` is short ("disk full").

    It is also the local API's `storage_failed` refusal, so that it reaches a client (or an agent
    runner) as that, wherever in a method the write happened, without each caller translating it."""

    def __init__(self, reason: str, where: Path) -> None:
        ApiError.__init__(
            self,
            "storage_failed",
            f"the daemon could not save this change ({reason} in {where.parent}); nothing was changed or "
            "sent. Free some space (or fix the disk) and retry: the daemon recovers by itself",
            {"reason": reason},
        )
        self.reason = reason


class DatabaseDamaged(StoreError):
    """The database file is damaged or is not a clawroomd database."""


class StateMismatch(StoreError):
    """The database does not know rooms whose transcripts are in rooms/ (deleted, emptied or replaced)."""


class UnsafeStateDir(StoreError):
    """The state dir (or a folder in it) exists but is not private; see clawroomd.private_files."""


# SQLite primary result codes (the low byte of an extended code) that mean the storage, not our SQL.
_SQLITE_REASONS = {
    5: "the database is busy",  # SQLITE_BUSY
    6: "the database is locked",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    11: "database damaged",  # SQLITE_CORRUPT
    13: "disk full",  # SQLITE_FULL
    14: "cannot open the database file",  # SQLITE_CANTOPEN
    26: "not a database",  # SQLITE_NOTADB
}
_OS_REASONS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EIO: "I/O error",
               errno.EROFS: "read-only"}  # fmt: skip


def describe(exc: BaseException) -> str:
    """A short reason for a storage error: "disk full", "I/O error", ..."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SQLITE_REASONS:
            return _SQLITE_REASONS[code & 0xFF]
        return str(exc)
    if isinstance(exc, OSError):
        return _OS_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return str(exc)


def _is_storage_error(exc: BaseException) -> bool:
    """An error the disk or the database file caused, as opposed to our own SQL or data (IntegrityError)."""
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError | OSError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError
    )


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
    peer_id: str
    peer_key: bytes | None  # known once a handshake proved it (we met)
    name: str | None  # as the peer advertises it (untrusted)
    addrs: list[str]  # host:port, as last seen on the LAN
    first_seen_ms: int
    last_seen_ms: int  # last sighting or confirmation
    met_ms: int | None  # first time a room bound us together
    state: str | None  # "up" | "gone" (LAN only; None: never seen on the LAN)


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
    [  # LAN discovery: peers are keyed by peer id (an advert carries no key), with first seen and met
        """CREATE TABLE peers_v2 (
            peer_id       TEXT PRIMARY KEY,
            peer_key      BLOB UNIQUE,
            name          TEXT,
            addrs         TEXT NOT NULL,
            first_seen_ms INTEGER NOT NULL,
            last_seen_ms  INTEGER NOT NULL,
            met_ms        INTEGER,
            state         TEXT CHECK (state IN ('up', 'gone'))
        )""",
        """INSERT INTO peers_v2 (peer_id, peer_key, name, addrs, first_seen_ms, last_seen_ms)
            SELECT peer_id, peer_key, name, addrs, last_seen_ms, last_seen_ms FROM peers""",
        "DROP TABLE peers",
        "ALTER TABLE peers_v2 RENAME TO peers",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def _dumps(value: Any) -> str:
    # Sorted keys: both sides' transcript.jsonl must be byte-identical, whatever order a dict was built in.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _transcript_line(transcript_json: str) -> bytes:
    return (transcript_json + "\n").encode()


def _check_room_id(room_id: str) -> str:
    if not is_room_id(room_id):
        raise BadName(f"{room_id!r} is not a room id ({ROOM_ID_RULE})")
    return room_id


def _mkdir_private(path: Path) -> None:
    """A folder of the store (rooms/, rooms/<id>/): created 0700, or an existing private one."""
    try:
        ensure_private_dir(path, what="a folder of the state dir")
    except UnsafeFolder as e:
        raise UnsafeStateDir(str(e)) from None


# ---------------------------------------------------------------------------------------------- store
class Store:
    """The daemon's database and room folders. ``Store(state_dir)``; close() or use as a context manager."""

    def __init__(
        self, state_dir: str | os.PathLike[str], *, durability: Durability = "normal", repair: bool = True
    ) -> None:
        """Open (or create) the store. `repair=False` leaves ``repair_transcripts`` to the caller (the
        daemon runs it after verifying each room, so that a damaged room's files are left as they are)."""
        if durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', not {durability!r}")
        self.state_dir = Path(state_dir)
        self.durability = durability
        try:
            ensure_private_dir(self.state_dir, what="the state dir")
        except UnsafeFolder as e:
            raise UnsafeStateDir(str(e)) from None
        _mkdir_private(self.state_dir / "rooms")
        self.db_path = self.state_dir / DB_NAME
        with_transcripts = self._rooms_with_transcripts()
        if with_transcripts and not (self.db_path.exists() and self.db_path.stat().st_size > 0):
            raise self._mismatch(with_transcripts, "is missing or empty")  # before creating anything
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _tx).
        self._db = sqlite3.connect(self.db_path, isolation_level=None)
        self._depth = 0
        self._after_commit: list[list[Callable[[], None]]] = []
        self.commits = 0  # outer transactions committed, so a checkpointer can tell whether there is work
        # Opening (and checking the folder of) the transcript for every line cost more than the write.
        self._transcripts: OrderedDict[str, int] = OrderedDict()
        self._stale: set[str] = set()  # rooms whose transcript.jsonl lacks committed lines
        self._problems: dict[str, str] = {}  # failing area -> reason (see health)
        self._logged: dict[tuple[str, str], float] = {}  # (area, "failing" | "ok") -> when last logged
        self._opening = True  # a failure while opening is reported by the constructor's one exception
        try:
            self._check_ours(with_transcripts)
            for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
                p = self.state_dir / name
                if p.exists():
                    os.chmod(p, 0o600)
            self._db.execute("PRAGMA busy_timeout = 5000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"could not switch {self.db_path} to WAL mode (got {mode!r})")
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]  # ~5 ms for 8 MB
            if problem != "ok":
                raise DatabaseDamaged(
                    f"{self.db_path} is damaged (SQLite's quick_check: {' '.join(problem.split())}); restore it "
                    f"(with its -wal file) from a backup. Nothing was changed"
                )
            self._check_not_behind_transcripts()
            if repair:
                self.repair_transcripts()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, StorageFailed):
                exc = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else exc
            if isinstance(exc, sqlite3.Error | StorageFailed):
                raise self._open_error(exc) from None
            raise
        self._opening = False

    def _open_error(self, exc: sqlite3.Error | StorageFailed) -> StoreError:
        reason = exc.reason if isinstance(exc, StorageFailed) else describe(exc)
        if reason in ("not a database", "database damaged"):
            return DatabaseDamaged(
                f"{self.db_path} is damaged or is not a clawroomd database ({exc}); restore it (with its "
                f"-wal file) from a backup. Nothing was changed"
            )
        return StoreError(f"cannot open the database {self.db_path}: {reason}")

    def _rooms_with_transcripts(self) -> list[str]:
        """Room ids under rooms/ that have a non-empty transcript.jsonl (the trace a room leaves)."""
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.state_dir / "rooms") as entries:
            for entry in entries:
                if is_room_id(entry.name):
                    with contextlib.suppress(OSError):
                        if os.stat(Path(entry.path) / TRANSCRIPT).st_size > 0:
                            found.append(entry.name)
        return sorted(found)

    def _mismatch(self, rooms: list[str], what: str) -> StateMismatch:
        return StateMismatch(
            f"{self.db_path} {what}, yet {self.state_dir / 'rooms'} holds the transcripts of {len(rooms)} room(s) "
            f"it has no record of ({', '.join(rooms[:3])}{', ...' if len(rooms) > 3 else ''}): the database was "
            f"deleted, emptied or replaced by an older copy. Not starting, so that nothing is overwritten: "
            f"restore {DB_NAME} (with its -wal file) from a backup, or move {self.state_dir / 'rooms'} and "
            f"{self.db_path} aside to start afresh"
        )

    def _check_ours(self, with_transcripts: list[str]) -> None:
        """Refuse a foreign SQLite file, and a database that lacks rooms whose transcripts are here."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "schema_version" not in tables:
            raise DatabaseDamaged(
                f"{self.db_path} is not a clawroomd database (it holds other tables: "
                f"{', '.join(sorted(tables)[:5])}); restore {DB_NAME} from a backup, or use another --state-dir. "
                "Nothing was changed"
            )
        if with_transcripts:
            known = {r[0] for r in self._db.execute("SELECT room_id FROM rooms")} if "rooms" in tables else set()
            missing = [r for r in with_transcripts if r not in known]
            if missing:
                raise self._mismatch(missing, "has no record of some rooms" if known else "has no rooms")

    def _check_not_behind_transcripts(self) -> None:
        """Refuse a database that lost the last events of a room whose transcript.jsonl still holds them.

        A transcript line is appended only after its event commits, so a line past the database's last
        event that links to it (its `prev` is that event's hash) is an event the database has lost: an
        older copy restored, a -wal file cut short. Rewriting the file from the database would destroy
        the only copy of those events here, and a host would then sign other events under the same seqs
        as the ones its guest holds. A line that does not link (torn, edited, junk) is repaired as usual."""
        lost: list[str] = []
        for (room_id,) in self._db.execute("SELECT room_id FROM rooms ORDER BY room_id").fetchall():
            try:
                data = (self.state_dir / "rooms" / room_id / TRANSCRIPT).read_bytes()
            except OSError:  # none (or unreadable): nothing there to lose; the repair deals with it
                continue
            head = self._db.execute(
                "SELECT seq, hash FROM events WHERE room_id = ? ORDER BY seq DESC LIMIT 1", (room_id,)
            ).fetchone()
            count, head_hash = (0, bytes(32)) if head is None else (int(head[0]) + 1, bytes(head[1]))
            lines = data.split(b"\n")[:-1]  # complete lines only
            if len(lines) <= count:
                continue
            try:
                first = json.loads(lines[count])
            except ValueError:
                continue
            if isinstance(first, dict) and first.get("seq") == count and first.get("prev") == head_hash.hex():
                lost.append(f"{room_id}: events {count}..{len(lines) - 1}")
        if lost:
            raise StateMismatch(
                f"{self.db_path} lacks the last events of {len(lost)} room(s) that their {TRANSCRIPT} holds "
                f"({'; '.join(lost[:3])}{'; ...' if len(lost) > 3 else ''}): the database was replaced by an older "
                f"copy or lost the end of its -wal file. Not starting, so that nothing is overwritten: restore "
                f"{DB_NAME} (with its -wal file) from a backup that has those events"
            )

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

    def checkpoint(self) -> sqlite3.Error | None:
        """Copy committed WAL content into the database file (PASSIVE: never waits for or blocks a
        writer). Thread-safe: it uses its own short-lived connection and touches nothing shared. Durability
        does not depend on it: a committed transaction is already in the WAL. Returns the error if it
        failed (a full disk cannot grow the database file); pass it to ``note_checkpoint``."""
        try:
            db = sqlite3.connect(self.db_path, isolation_level=None)
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                db.close()
        except sqlite3.Error as e:
            return e
        return None

    def note_checkpoint(self, error: sqlite3.Error | None) -> None:
        """Record a ``checkpoint`` outcome in `health` (from the store's own thread). A failure is retried
        by the caller; SQLite's backstop checkpoint remains."""
        if error is None:
            self._ok("checkpoint")
        else:
            self._failed("checkpoint", error, "the WAL is not copied into the database file (retried)")

    # -- health
    @property
    def health(self) -> str:
        """``"ok"``, or ``"failing: <reason>"`` while some write does not work (e.g. "failing: disk full")."""
        if not self._problems:
            return "ok"
        return "failing: " + "; ".join(dict.fromkeys(self._problems.values()))

    @property
    def healthy(self) -> bool:
        return not self._problems

    def _failed(self, area: str, exc: BaseException, consequence: str) -> str:
        reason = describe(exc)
        if area not in self._problems and not self._opening and self._may_log(area, "failing"):
            log.error("storage failing in %s: %s (%s); %s", self.state_dir, reason, area, consequence)
        self._problems[area] = reason
        return reason

    def _ok(self, area: str) -> None:
        if self._problems.pop(area, None) is not None and self._may_log(area, "ok"):
            log.warning("storage works again in %s (%s)", self.state_dir, area)

    def _may_log(self, area: str, what: str) -> bool:
        # A nearly full disk flaps (a small write fits, the next big one does not): at most one line per
        # area and direction per LOG_EVERY_S, so that the log says what happens without filling up too.
        now = time.monotonic()
        if now - self._logged.get((area, what), -LOG_EVERY_S) < LOG_EVERY_S:
            return False
        self._logged[area, what] = now
        return True

    def _space_returned(self) -> bool:
        """False while the disk is known full and still has less than RECOVERY_FREE_BYTES free: a write
        that fits in space SQLite or a failed attempt just freed would say "works" too early."""
        if "disk full" not in self._problems.values():
            return True
        try:
            st = os.statvfs(self.state_dir)
        except OSError:
            return True
        return st.f_bavail * st.f_frsize >= RECOVERY_FREE_BYTES

    def recover(self) -> bool:
        """While something is failing: retry it (a probe write, stale transcripts; the caller runs
        ``checkpoint`` in a thread). Returns ``healthy``. Does nothing when healthy."""
        if not self._problems or not self._space_returned():
            return self.healthy
        if "database" in self._problems:
            with contextlib.suppress(StorageFailed), self._tx():
                self._db.execute("UPDATE schema_version SET version = version")  # a real write
        for room_id in list(self._stale):
            self._rewrite_transcript(room_id)
        return self.healthy

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
        """A transaction (BEGIN IMMEDIATE) or, nested, a savepoint. Hooks run after the outer COMMIT.

        Any storage error inside, or at COMMIT, rolls the whole transaction back and raises
        StorageFailed: after it the database is exactly as before and the next transaction can start
        (a COMMIT that failed on a full disk would otherwise leave the transaction open, and every later
        BEGIN would fail too)."""
        depth = self._depth
        try:
            self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        except sqlite3.Error as e:
            if depth == 0 and _is_storage_error(e):
                raise self._storage_failed(e) from e
            raise
        self._depth += 1
        self._after_commit.append([])
        try:
            yield
        except BaseException as exc:
            self._after_commit.pop()
            self._depth -= 1
            self._rollback(depth)
            if _is_storage_error(exc):
                raise self._storage_failed(exc) from exc
            raise
        hooks = self._after_commit.pop()
        self._depth -= 1
        if depth > 0:
            self._db.execute(f"RELEASE sp{depth}")
            self._after_commit[-1].extend(hooks)
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback(0)
            raise self._storage_failed(e) from e
        self._ok("database")
        self.commits += 1
        for hook in hooks:
            hook()

    def _one_write(self) -> contextlib.AbstractContextManager[None]:
        """For a method whose checks all come before its single write statement: its own transaction, or,
        inside one, nothing more. A savepoint would cost two more statements per call (the commit path
        makes several such calls per event, a join a dozen), and SQLite undoes a failed statement by
        itself, so an exception still leaves the enclosing transaction as it was. Storage errors become
        StorageFailed at the enclosing transaction."""
        return self._tx() if self._depth == 0 else contextlib.nullcontext()

    def _rollback(self, depth: int) -> None:
        # SQLite may already have rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR):
        # then there is nothing left to undo, and the statement's own error is the one to report.
        if not self._db.in_transaction:
            return
        with contextlib.suppress(sqlite3.Error):
            if depth == 0:
                self._db.execute("ROLLBACK")
            else:
                self._db.execute(f"ROLLBACK TO sp{depth}")
                self._db.execute(f"RELEASE sp{depth}")

    def _storage_failed(self, exc: BaseException) -> StorageFailed:
        if isinstance(exc, StorageFailed):
            return exc
        reason = self._failed("database", exc, "changes are refused (storage_failed) until writing works again")
        return StorageFailed(reason, self.db_path)

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
            with self._one_write():
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
        with self._one_write():
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
        with self._one_write():
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
        # After COMMIT: a failure here must not un-acknowledge the event. The file is marked stale and
        # rewritten whole from the database (at this room's next event or at recover()).
        if room_id in self._stale:
            self._rewrite_transcript(room_id)  # the database already holds this line
            return
        line = _transcript_line(text)
        try:
            fd = self._transcripts.pop(room_id, None)
            if fd is None:
                directory = self.room_dir(room_id)
                _mkdir_private(directory)
                fd = os.open(directory / TRANSCRIPT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                if len(self._transcripts) >= OPEN_TRANSCRIPTS:
                    self._close_transcript(next(iter(self._transcripts)))
            self._transcripts[room_id] = fd  # now the most recently used
            if os.write(fd, line) != len(line):  # a short write leaves a torn line: as bad as none
                raise OSError(errno.ENOSPC, "short write")
        except (OSError, StoreError) as e:
            self._close_transcript(room_id)
            self._stale.add(room_id)
            self._failed("transcripts", e, f"{TRANSCRIPT} of {room_id} and others lag the database (rewritten later)")

    def _rewrite_transcript(self, room_id: str) -> bool:
        """Rewrite the room's transcript.jsonl from the database; False (still stale) if the disk refuses."""
        lines = self._db.execute("SELECT transcript FROM events WHERE room_id = ? ORDER BY seq", (room_id,)).fetchall()
        self._close_transcript(room_id)  # it would keep appending to the replaced file
        try:
            path = self.room_dir(room_id) / TRANSCRIPT
            _mkdir_private(path.parent)
            atomic_write(path, b"".join(_transcript_line(t) for (t,) in lines))
        except (OSError, StoreError) as e:
            self._stale.add(room_id)
            self._failed("transcripts", e, f"{TRANSCRIPT} of {room_id} and others lag the database (rewritten later)")
            return False
        self._stale.discard(room_id)
        if not self._stale:
            self._ok("transcripts")
        return True

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

    def repair_transcripts(self, skip: Collection[str] = ()) -> list[str]:
        """Make every room's transcript.jsonl (but those in `skip`) byte-identical to the database's
        lines; returns the rooms rewritten. A file that differs in any byte (a lost, torn, extra or edited
        line) is rewritten atomically from the database. Run by the constructor unless `repair=False`."""
        repaired = []
        for room in self.list_rooms():
            if room.room_id in skip:
                continue
            rows = self._db.execute("SELECT transcript FROM events WHERE room_id = ? ORDER BY seq", (room.room_id,))
            want = b"".join(_transcript_line(t) for (t,) in rows)
            path = self.room_dir(room.room_id) / TRANSCRIPT
            try:
                data: bytes | None = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data == want or (data is None and not want):
                continue
            if self._rewrite_transcript(room.room_id):
                log.warning(
                    "rewrote %s from the database (%d events): its content differed", path, want.count(b"\n")
                )
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
        with self._one_write():
            cur = self._db.execute("DELETE FROM outbox WHERE room_id = ? AND sid = ?", (room_id, sid))
        return cur.rowcount == 1

    # -- invites (host side)
    def put_invite(self, room_id: str, secret_hash: bytes, expires_ms: int) -> None:
        """Create or replace the room's invite (a replaced invite is unused again)."""
        try:
            with self._one_write():
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
        with self._one_write():
            cur = self._db.execute(
                "UPDATE invites SET used_ms = ?, guest_key = ?"
                " WHERE room_id = ? AND used_ms IS NULL AND expires_ms > ?",
                (now_ms, guest_key, room_id, now_ms),
            )
        return cur.rowcount == 1

    # -- peers
    _PEER_COLUMNS = "peer_id, peer_key, name, addrs, first_seen_ms, last_seen_ms, met_ms, state"

    def see_peer(self, peer_id: str, *, name: str, addrs: list[str], now_ms: int) -> None:
        """A sighting on the LAN: insert, or refresh its name, addresses and last seen; state `up`."""
        with self._tx():
            self._db.execute(
                "INSERT INTO peers (peer_id, name, addrs, first_seen_ms, last_seen_ms, state)"
                " VALUES (?, ?, ?, ?, ?, 'up') ON CONFLICT (peer_id) DO UPDATE SET name = excluded.name,"
                " addrs = excluded.addrs, last_seen_ms = excluded.last_seen_ms, state = 'up'",
                (peer_id, name, _dumps(list(addrs)), now_ms, now_ms),
            )

    def set_peer_state(self, peer_id: str, state: str, now_ms: int | None = None) -> None:
        """`up` (confirmed: last seen becomes `now_ms`) or `gone` (did not answer)."""
        with self._tx():
            self._db.execute(
                "UPDATE peers SET state = ?, last_seen_ms = COALESCE(?, last_seen_ms) WHERE peer_id = ?",
                (state, now_ms, peer_id),
            )

    def met_peer(self, peer_id: str, peer_key: bytes, now_ms: int) -> None:
        """A room now binds us to this peer (its key proven by a handshake): keep the key and when we met."""
        with self._tx():
            self._db.execute(
                "INSERT INTO peers (peer_id, peer_key, addrs, first_seen_ms, last_seen_ms, met_ms)"
                " VALUES (?, ?, '[]', ?, ?, ?) ON CONFLICT (peer_id) DO UPDATE SET peer_key = excluded.peer_key,"
                " met_ms = COALESCE(peers.met_ms, excluded.met_ms)",
                (peer_id, peer_key, now_ms, now_ms, now_ms),
            )

    @staticmethod
    def _peer(r: tuple[Any, ...]) -> PeerRow:
        return PeerRow(
            peer_id=r[0], peer_key=r[1], name=r[2], addrs=json.loads(r[3]), first_seen_ms=r[4], last_seen_ms=r[5],
            met_ms=r[6], state=r[7],
        )  # fmt: skip

    def get_peer(self, peer_id: str) -> PeerRow | None:
        r = self._db.execute(f"SELECT {self._PEER_COLUMNS} FROM peers WHERE peer_id = ?", (peer_id,)).fetchone()
        return None if r is None else self._peer(r)

    def list_peers(self) -> list[PeerRow]:
        """All known peers, most recently seen first."""
        rows = self._db.execute(f"SELECT {self._PEER_COLUMNS} FROM peers ORDER BY last_seen_ms DESC, peer_id")
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
