"""The room supervisor: owns every open room, applies local moves, and persists before it acknowledges.

Host rooms run the authoritative core (`hosting.py` serves the guest's link), guest rooms the replica
(`guesting.py` keeps one redialling link per host daemon). Everything that changes a room goes through
`commit`, which writes the event to SQLite before anyone (agent, watcher or peer) hears of it; if the
write fails (disk full, I/O error) the core is rolled back to what the database holds, and StorageFailed
(the API's `storage_failed`) goes to the caller. Nothing unsaved is ever seen: the core's append and
`commit` run with nothing awaited between them.

On start, `_restore` rebuilds every room from the store and verifies it: every hash link, the stored
hashes, and the head event's signature (which, through the links, covers the whole chain). A room that
fails is not served (it is listed in `damaged`, and its files are left untouched); the rest start.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..core import cose
from ..core.envelope import MAX_EVENT_BYTES, SignedEvent
from ..core.errors import LocalProtocolError
from ..core.events import Body, CloseAccepted, CloseProposed, ErrorEvent, RoomCreated
from ..core.invites import new_invite
from ..core.joinurl import JoinURL
from ..core.room import Appended, GuestRoom, HostRoom
from ..core.rules import outcome_digest
from . import agents, api
from .errors import ApiError, api_error, check_seq
from .guesting import GuestSide
from .hosting import HostSide
from .live import LiveRoom, mono_ms, now_ms
from .store import StorageFailed
from .views import result_view

if TYPE_CHECKING:
    from ..core.identity import Identity
    from .config import DaemonConfig
    from .rpc import Session
    from .store import Store

log = logging.getLogger("clawroomd.rooms")

CHECKPOINT_INTERVAL = 0.5  # seconds between WAL checkpoints in a worker thread (when something was committed)


class Supervisor:
    def __init__(
        self, *, config: DaemonConfig, store: Store, identity: Identity, static_key: bytes, nursery: trio.Nursery
    ) -> None:
        self.config = config
        self.store = store
        self.identity = identity
        self.static_key = static_key
        self.nursery = nursery
        self.rooms: dict[str, LiveRoom] = {}
        self.damaged: dict[str, str] = {}  # room id -> why it failed verification at start (not served)
        self.listen: list[str] = []
        extra = self.tuning = dict(config.extra.get("tuning", {}))  # the config file's [tuning] table
        self.send_timeout = float(extra.get("send_timeout", 15.0))
        self.link_options = {k: float(extra[k]) for k in ("keepalive_interval", "dead_after") if k in extra}
        self.host_side = HostSide(self)
        self.guest_side = GuestSide(
            self, max_backoff=float(extra.get("max_backoff", 30.0)), guest_grace_s=float(extra.get("guest_grace", 30.0))
        )
        self.api = api.Api(self)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        self._restore()  # before listening: a guest reconnecting at once must find its room
        host, port = self.config.listen_host, self.config.listen_port
        bound = await self.nursery.start(self.host_side.serve, host, port)
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.listen = [f"{shown}:{bound[1]}"]
        self.store.defer_checkpoints()
        self.nursery.start_soon(self._maintain_storage)
        task_status.started(self.listen)

    async def _maintain_storage(self) -> None:
        """Keep SQLite's checkpoints (and their fsyncs) off the event path (see Store.defer_checkpoints),
        and while some write is failing, retry it: once the disk works again the store says so, and the
        guest links that backed off because of it redial at once."""
        done = self.store.commits
        while True:
            await trio.sleep(CHECKPOINT_INTERVAL)
            failing = not self.store.healthy
            if self.store.commits != done or failing:
                done = self.store.commits
                self.store.note_checkpoint(await trio.to_thread.run_sync(self.store.checkpoint))
            if failing and self.store.recover():
                for link in self.guest_side.links.values():
                    link.wake.set()

    def _restore(self) -> None:
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
            self.rooms[row.room_id] = live
            self.start_room_tasks(live)
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

    def start_room_tasks(self, live: LiveRoom) -> None:
        if live.closed:
            return
        if live.role == "host":
            self.nursery.start_soon(self.host_side.deadlines, live)
        else:
            self.guest_side.attach(live)
        if live.meta.get("agent_command"):
            self.nursery.start_soon(agents.run_agent_loop, self, live)

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        return await self.api.handle(method, params, session)

    # -- the one way events enter the store --------------------------------------------------------

    def commit(self, live: LiveRoom, events: tuple[SignedEvent, ...] | list[SignedEvent], *, wake: bool = True) -> None:
        """Persist events the core has appended, then wake watchers. Called with nothing awaited between
        the core's append and here, so no reader ever sees an event that is not on disk: if the write
        fails, the core is rolled back to the database's last seq before StorageFailed is raised, and
        no watcher, agent or peer is told anything. A host committing with wake=False calls
        `host_side.forward` next, which wakes them."""
        if not events:
            return
        stored_phase = live.stored_phase
        try:
            self._write(live, events)
        except StorageFailed:
            live.stored_phase = stored_phase
            self._roll_back(live, events[0].header.seq - 1)
            raise
        if wake:
            live.bump()
        if live.state.phase == "closed":
            log.info("room %s closed: %s", live.room_id, live.state.result.outcome.status if live.state.result else "")

    def _roll_back(self, live: LiveRoom, before: int) -> None:
        """After a failed write: make the core hold exactly what the database holds."""
        try:
            committed = self.store.last_seq(live.room_id)
        except sqlite3.Error:
            committed = before  # the transaction was rolled back, so the database holds what it held
        dropped = live.core.rollback(committed)
        log.debug("room %s: %d unsaved event(s) rolled back to seq %d", live.room_id, len(dropped), committed)

    def _write(self, live: LiveRoom, events: tuple[SignedEvent, ...] | list[SignedEvent]) -> None:
        with self.store.transaction():
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

    def room(self, room_id: object) -> LiveRoom:
        if isinstance(room_id, str) and room_id in self.damaged:
            raise ApiError(
                "storage_failed",
                f"room {room_id} failed verification when the daemon started ({self.damaged[room_id]}) and is "
                "not served; its files are untouched. Restore the state dir from a backup; the daemon's log has more",
                {"room_id": room_id, "damaged": self.damaged[room_id]},
            )
        if not isinstance(room_id, str) or room_id not in self.rooms:
            raise ApiError("unknown_room", f"no room {room_id!r} on this daemon; `clawroom list` shows the rooms")
        return self.rooms[room_id]

    # -- local moves ---------------------------------------------------------------------------------

    async def create_room(
        self, spec: RoomCreated, *, advertise: list[tuple[str, int]], meta: dict[str, Any], ttl_ms: int | None
    ) -> LiveRoom:
        room_id = "cr_" + secrets.token_hex(8)
        now = now_ms()
        secret = secrets.token_bytes(16)
        record = new_invite(room_id, secret, now, **({"ttl_ms": ttl_ms} if ttl_ms else {}))
        url = JoinURL(room_id=room_id, host_peer_id=self.identity.peer_id, addrs=tuple(advertise), secret=secret)
        core = HostRoom.create(self.identity, room_id=room_id, spec=spec, now_ms=now, mono_ms=mono_ms())
        live = LiveRoom(room_id=room_id, role="host", core=core, meta={**meta, "join_url": url.format()}, peer_key=None)
        with self.store.transaction():
            self.store.create_room(room_id, "host", live.meta, now)
            self.store.put_invite(room_id, record.secret_sha256, record.expires_ms)
            self.commit(live, core.log)
        self.rooms[room_id] = live
        self.start_room_tasks(live)
        log.info("room %s created (%s), invite valid until %d", room_id, spec.topic, record.expires_ms)
        return live

    async def submit(
        self,
        live: LiveRoom,
        make_body: Callable[[], Body],
        *,
        sid: str | None = None,
        expect_seq: int | None = None,
    ) -> dict[str, Any]:
        """Our side's event: validated, signed, sequenced by the host, committed. Returns the event JSON
        (or, for a guest whose host is unreachable, `queued`).

        `expect_seq` binds the move to the room as its author saw it (DESIGN §4, SPEC §15.7): under the
        room lock the room must still be at that seq, else `stale_state` and nothing is signed, and
        `make_body` then runs on exactly that state, so an `accept` or a countersignature is the one
        seen. A guest never re-signs a bound move on a newer state. Unbound (our own `joined` and
        `cancel`, which mean the same on any state) `make_body` runs again on a guest's retry."""
        sid = sid or "l-" + secrets.token_hex(8)
        if (done := live.core.original(sid)) is not None:
            return {"event": done.to_json(), "duplicate": True}
        if live.local_result is not None:
            raise ApiError("room_closed", "this room has ended: " + str(live.local_result.get("reason", "")))
        if live.role == "host":
            async with live.lock:
                check_seq(expect_seq, live.state.seq)
                try:
                    sub: Appended = live.host.send(make_body(), sid=sid, now_ms=now_ms(), mono_ms=mono_ms())
                except LocalProtocolError as err:
                    raise api_error(err.code, err.message) from None
                if not sub.duplicate:
                    self.commit(live, sub.events, wake=False)
            await self.host_side.forward(live)
            return {"event": sub.events[0].to_json(), "duplicate": sub.duplicate}
        return await self.guest_side.submit(live, make_body, sid, expect_seq=expect_seq)

    def close_body(self, live: LiveRoom) -> Body:
        """Countersign the peer's close if one is pending, else propose closing with the current outcome."""
        st = live.state
        if st.phase == "delivering" and st.pending_close is not None and st.pending_close.proposer != live.role:
            return CloseAccepted(digest=st.pending_close.digest)
        if st.spec is None:
            raise ApiError("not_ready", "the room has not started yet")
        outcome = st.outcome()
        return CloseProposed(outcome=outcome, digest=outcome_digest(live.room_id, outcome))

    async def cancel(self, live: LiveRoom, reason: str, *, expect_seq: int | None = None) -> dict[str, Any]:
        """End the room as cancelled; `expect_seq` as for `submit` (an agent's cancel is a reply too)."""
        if live.role == "host":
            async with live.lock:
                check_seq(expect_seq, live.state.seq)
                try:
                    sub = live.host.close(
                        "cancelled",
                        reason=reason or "cancelled by the host's owner",
                        now_ms=now_ms(),
                        mono_ms=mono_ms(),
                        sid="cancel-" + secrets.token_hex(4),
                    )
                except LocalProtocolError as err:
                    raise api_error(err.code, err.message) from None
                self.commit(live, sub.events)
            return {"event": sub.events[-1].to_json()}
        return await self.submit(
            live, lambda: ErrorEvent(code="cancelled", message=reason[:500]), expect_seq=expect_seq
        )
