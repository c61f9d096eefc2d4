"""The room registry: every room this daemon holds, and the one way events enter the store.

Everything that changes a room goes through `commit`, which writes the events to SQLite before anyone
(agent, watcher or peer) hears of them; if the write fails (disk full, I/O error) the core is rolled
back to what the database holds, and StorageFailed (the API's `storage_failed`) goes to the caller.
Nothing unsaved is ever seen: the core's append and `commit` run with nothing awaited between them.

On start, `restore` rebuilds every room from the store and verifies it: every hash link, the stored
hashes, and the head event's signature (which, through the links, covers the whole chain). A room that
fails is not served (it is listed in `damaged`, and its files are left untouched); the rest open.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence

from ..core import cose
from ..core.envelope import MAX_EVENT_BYTES, SignedEvent
from ..core.errors import LocalProtocolError
from ..core.identity import Identity
from ..core.room import GuestRoom, HostRoom
from .clock import mono_ms, now_ms
from .errors import ApiError
from .live import LiveRoom
from .store import StorageFailed, Store
from .views import result_view

log = logging.getLogger("clawroomd.rooms")


class Rooms:
    """Every room of this daemon by id. `on_open` (set by the composition root) starts a room's tasks
    when it is added, restored or joined; it must not block."""

    def __init__(self, store: Store, identity: Identity) -> None:
        self.store = store
        self.identity = identity
        self._rooms: dict[str, LiveRoom] = {}
        self.damaged: dict[str, str] = {}  # room id -> why it failed verification at start (not served)
        self.on_open: Callable[[LiveRoom], None] = lambda live: None

    def __contains__(self, room_id: object) -> bool:
        return isinstance(room_id, str) and room_id in self._rooms

    def __getitem__(self, room_id: str) -> LiveRoom:
        return self._rooms[room_id]

    def __iter__(self) -> Iterator[LiveRoom]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    def lookup(self, room_id: object) -> LiveRoom | None:
        """The room by id, or None (for peers: what they may see is decided by the caller)."""
        return self._rooms.get(room_id) if isinstance(room_id, str) else None

    def open(self, live: LiveRoom) -> None:
        """Hold a new (created or restored) room and start its tasks."""
        self.add(live)
        self.start_tasks(live)

    def add(self, live: LiveRoom) -> None:
        self._rooms[live.room_id] = live

    def start_tasks(self, live: LiveRoom) -> None:
        self.on_open(live)

    def get(self, room_id: object) -> LiveRoom:
        """The room by id, for a local-API caller: `unknown_room` (or `storage_failed` for a damaged one)."""
        if isinstance(room_id, str) and room_id in self.damaged:
            raise ApiError(
                "storage_failed",
                f"room {room_id} failed verification when the daemon started ({self.damaged[room_id]}) and is "
                "not served; its files are untouched. Restore the state dir from a backup; the daemon's log has more",
                {"room_id": room_id, "damaged": self.damaged[room_id]},
            )
        if not isinstance(room_id, str) or room_id not in self._rooms:
            raise ApiError("unknown_room", f"no room {room_id!r} on this daemon; `clawroom list` shows the rooms")
        return self._rooms[room_id]

    def restore(self) -> None:
        """Rebuild every room from the store, verified (see the module docstring), and open it."""
        restored = 0
        for row in self.store.list_rooms():
            try:
                core = self._verified_core(row.room_id, row.role, row.peer_key)
            except (LocalProtocolError, sqlite3.DatabaseError) as err:
                reason = f"{err.code}: {err.message}" if isinstance(err, LocalProtocolError) else str(err)
                self.damaged[row.room_id] = reason
                log.error(
                    "room %s failed verification and is not served (its files are left as they are): %s",
                    row.room_id, reason,
                )  # fmt: skip
                continue
            if core is None:
                continue  # a guest room whose join never got its first event
            live = LiveRoom(
                room_id=row.room_id,
                role=row.role,
                core=core,
                meta=row.meta,
                peer_key=row.peer_key,  # host rooms: bound when the invite was taken, before `joined`
            )
            live.local_result = row.result if row.result and row.result.get("local") else None
            live.stored_phase = row.phase
            self.open(live)
            restored += 1
        self.store.repair_transcripts(skip=self.damaged)
        if restored:
            log.info("resumed %d room(s) from the store", restored)
        if self.damaged:
            log.error("%d room(s) not served (failed verification): %s", len(self.damaged), ", ".join(self.damaged))

    def _verified_core(self, room_id: str, role: str, peer_key: bytes | None) -> HostRoom | GuestRoom | None:
        """The room rebuilt from its stored events, verified; LocalProtocolError says what is wrong.

        Every event goes through the transition rules, so every `prev` must be the hash of the event
        before it; each stored hash must be the hash of its envelope; and the head's signature must
        verify. The head's signature covers its `prev`, which covers the event before it, and so on:
        one signature check (~0.1 ms) vouches for the whole chain."""
        rows = self.store.events(room_id)
        if not rows:
            return None
        envelopes = [e.envelope for e in rows]
        core: HostRoom | GuestRoom
        if role == "host":
            core = HostRoom.restore(self.identity, room_id, envelopes, now_ms=now_ms(), mono_ms=mono_ms())
        else:
            if peer_key is None:
                raise LocalProtocolError("bad_key", "the guest room has no host key")
            core = GuestRoom.restore(self.identity, room_id=room_id, host_key=peer_key, envelopes=envelopes)
        for row, event in zip(rows, core.log, strict=True):
            if row.hash != event.hash or row.seq != event.header.seq:
                raise LocalProtocolError("bad_chain", f"event #{row.seq}'s stored hash is not the hash of its bytes")
        head = core.log[-1]  # decoded already: check only its signature, not its whole payload again
        if not cose.decode_sign1(head.envelope, max_size=MAX_EVENT_BYTES).verify(head.header.key):
            raise LocalProtocolError("bad_signature", f"the signature on head event #{head.header.seq} does not verify")
        return core

    def commit(self, live: LiveRoom, events: tuple[SignedEvent, ...] | list[SignedEvent], *, wake: bool = True) -> None:
        """Persist events the core has appended, then wake watchers. Called with nothing awaited between
        the core's append and here, so no reader ever sees an event that is not on disk: if the write
        fails, the core is rolled back to the database's last seq before StorageFailed is raised, and
        no watcher, agent or peer is told anything. A host committing with wake=False calls
        `host_side.forward` next, which wakes them."""
        self.commit_many([(live, events)], wake=wake)

    def commit_many(
        self, batch: Sequence[tuple[LiveRoom, Sequence[SignedEvent]]], *, wake: bool = True
    ) -> None:
        """`commit` for events of several rooms (or several appends to one) that arrived together: one
        transaction, so one COMMIT and one WAL append for all of them (group commit). All or nothing:
        if it fails, every room in the batch is rolled back to what the database holds."""
        batch = [(live, events) for live, events in batch if events]
        if not batch:
            return
        phases: dict[str, str] = {}
        for live, _ in batch:
            phases.setdefault(live.room_id, live.stored_phase)
        try:
            with self.store.transaction():
                for live, events in batch:
                    self._write(live, events)
        except StorageFailed:
            for live, events in reversed(batch):
                live.stored_phase = phases[live.room_id]
                self._roll_back(live, events[0].header.seq - 1)
            raise
        for live, _ in batch:
            if wake:
                live.bump()
            if live.state.phase == "closed" and phases[live.room_id] != "closed":
                phases[live.room_id] = "closed"  # logged once, however often the room is in the batch
                log.info("room %s closed: %s", live.room_id,
                         live.state.result.outcome.status if live.state.result else "")  # fmt: skip

    def _roll_back(self, live: LiveRoom, before: int) -> None:
        """After a failed write: make the core hold exactly what the database holds."""
        try:
            committed = self.store.last_seq(live.room_id)
        except sqlite3.Error:
            committed = before  # the transaction was rolled back, so the database holds what it held
        dropped = live.core.rollback(committed)
        log.debug("room %s: %d unsaved event(s) rolled back to seq %d", live.room_id, len(dropped), committed)

    def _write(self, live: LiveRoom, events: Sequence[SignedEvent]) -> None:
        """Inside the caller's transaction."""
        for e in events:
            h = e.header
            self.store.append_event(
                live.room_id,
                seq=h.seq,
                hash=e.hash,
                envelope=e.envelope,
                kind=e.kind,
                author=h.author,
                ts_ms=h.ts,
                sid=h.sid,
                transcript=e.to_json(),
            )
            if live.role == "guest" and h.author == "guest":
                self.store.drop_outbox(live.room_id, h.sid)  # in the same transaction as the event
        st = live.state
        if st.phase != live.stored_phase:  # the room row changes with the phase, not with every message
            result = result_view(live) if st.phase == "closed" else None
            self.store.update_room(
                live.room_id, phase=st.phase, peer_key=live.peer_key, result=result, now_ms=now_ms()
            )
            live.stored_phase = st.phase

