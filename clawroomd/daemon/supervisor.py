"""The room supervisor: owns every open room, applies local moves, and persists before it acknowledges.

Host rooms run the authoritative core (`hosting.py` serves the guest's link), guest rooms the replica
(`guesting.py` keeps one redialling link per host daemon). Everything that changes a room goes through
`commit`, which writes the event to SQLite before anyone (agent, watcher or peer) hears of it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..core.envelope import SignedEvent
from ..core.errors import LocalProtocolError
from ..core.events import Body, CloseAccepted, CloseProposed, ErrorEvent, RoomCreated
from ..core.invites import new_invite
from ..core.joinurl import JoinURL
from ..core.room import GuestRoom, HostRoom, Submission
from ..core.rules import outcome_digest
from . import agents, api
from .errors import ApiError, api_error, check_seq
from .guesting import GuestSide
from .hosting import HostSide
from .live import LiveRoom, mono_ms, now_ms
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
        self.nursery.start_soon(self._checkpoints)
        task_status.started(self.listen)

    async def _checkpoints(self) -> None:
        """Keep SQLite's checkpoints (and their fsyncs) off the event path: see Store.defer_checkpoints."""
        done = self.store.commits
        while True:
            await trio.sleep(CHECKPOINT_INTERVAL)
            if self.store.commits != done:
                done = self.store.commits
                await trio.to_thread.run_sync(self.store.checkpoint)

    def _restore(self) -> None:
        restored = 0
        for row in self.store.list_rooms():
            envelopes = [e.envelope for e in self.store.events(row.room_id)]
            if not envelopes:
                continue  # a guest room whose join never got its first event
            try:
                if row.role == "host":
                    core: HostRoom | GuestRoom = HostRoom.restore(
                        self.identity, row.room_id, envelopes, now_ms=now_ms(), mono_ms=mono_ms()
                    )
                else:
                    assert row.peer_key is not None
                    core = GuestRoom.restore(
                        self.identity, room_id=row.room_id, host_key=row.peer_key, envelopes=envelopes
                    )
            except LocalProtocolError as err:
                log.error("room %s cannot be restored from the store: %s", row.room_id, err)
                continue
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
        if restored:
            log.info("resumed %d room(s) from the store", restored)

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
        the core's append and here, so no reader ever sees an event that is not on disk... except the
        core itself, which is why a store failure must take the daemon down (and restart restores).
        A host committing with wake=False calls `host_side.forward` next, which wakes them."""
        if not events:
            return
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
        if wake:
            live.bump()
        if live.state.phase == "closed":
            log.info("room %s closed: %s", live.room_id, live.state.result.outcome.status if live.state.result else "")

    def room(self, room_id: object) -> LiveRoom:
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
                    sub: Submission = live.host.send(make_body(), sid=sid, now_ms=now_ms(), mono_ms=mono_ms())
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
