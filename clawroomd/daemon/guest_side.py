"""The guest's side: one redialling link per host daemon, joins, submissions and their acknowledgements.

A `HostLink` keeps one authenticated connection to one host daemon for all the rooms we joined there.
It redials with capped exponential backoff and full jitter, and after each connect re-syncs every room
from its last sequence number and resubmits whatever is still in the outbox (submissions are
idempotent by sid, so a resubmission can never double an event). A join presents its invite on a short
connection of its own, since the invite travels only in handshake message 3; the room then moves onto
the shared link, which the host admits by key.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from ..core import sids
from ..core.envelope import open_envelope
from ..core.errors import LocalProtocolError, RemoteProtocolError
from ..core.events import Body, Joined, check_label
from ..core.identity import Identity
from ..core.joinurl import JoinURL
from ..core.room import GuestRoom
from ..link import DialFailed, LinkClosed, PeerConnection, dial_peer
from ..link.connection import close_reason
from .clock import mono_ms, now_ms
from .errors import CLOSE_STORAGE, ApiError, api_error, check_seq, stale_state
from .live import Ack, LiveRoom
from .rooms import Rooms
from .store import OutboxRow, StorageFailed
from .tuning import Tuning

log = logging.getLogger("clawroomd.guest")

# Rejections that mean "the room moved on while our submission was in flight": re-sign and retry.
STALE = frozenset({"bad_sequence", "bad_chain"})
MIN_BACKOFF = 0.2
LAN_WAIT_S = 10.0  # how long a join URL without addresses waits for discovery to find its host


class PendingJoin:
    def __init__(self, room_id: str, label: str, meta: dict[str, Any]) -> None:
        self.room_id = room_id
        self.label = label
        self.meta = meta
        self.done = trio.Event()
        self.error: ApiError | None = None
        self.live: LiveRoom | None = None


class HostLink:
    """Our one connection to one host daemon, shared by every room we joined there."""

    def __init__(self, side: GuestSide, peer_id: str, addrs: list[tuple[str, int]]) -> None:
        self.side = side
        self.store = side.store
        self.peer_id = peer_id
        self.addrs = addrs
        self.rooms: dict[str, LiveRoom] = {}
        self.joins: dict[str, PendingJoin] = {}
        self.conn: PeerConnection | None = None
        self.wake = trio.Event()

    async def run(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            if not self.joins and not any(not r.closed for r in self.rooms.values()):
                self.wake = trio.Event()
                await self.wake.wait()
            if await self._session():
                backoff = MIN_BACKOFF
                continue
            delay = random.uniform(0, backoff)  # full jitter: many guests do not redial in lockstep
            backoff = min(backoff * 2, self.side.max_backoff)
            with trio.move_on_after(delay):
                self.wake = trio.Event()
                await self.wake.wait()  # a new join need not wait out the backoff

    async def _session(self) -> bool:
        """One connection's life; True if it came up (so the next attempt starts with a short backoff)."""
        last_error: Exception | None = None
        found = [a for a in self.side.lan_addrs(self.peer_id) if a not in self.addrs]  # it may have moved
        for addr in self.addrs + found:
            came_up = False
            try:
                async with self.side.dial(addr, self.peer_id) as conn:
                    came_up = True
                    await self._connected(conn)
                return True
            except (LinkClosed, DialFailed, RemoteProtocolError, OSError) as exc:
                if came_up:
                    log.info("link to %s lost: %s", self.peer_id[:15], exc)
                    # A side whose disk fails would fail again at once: back off (a recovery of our
                    # own store wakes the link early).
                    return not (isinstance(exc, LinkClosed) and exc.error_code == "storage_failed")
                last_error = exc
            finally:
                self._disconnected()
        log.info("cannot reach %s: %s", self.peer_id[:15], last_error or "no address known")
        return False

    async def _connected(self, conn: PeerConnection) -> None:
        self.conn = conn
        log.info("link to %s up (sas %s)", self.peer_id[:15], conn.sas)
        for room_id in list(self.joins):
            await conn.send({"t": "sync", "room": room_id, "after": -1})
        for live in list(self.rooms.values()):
            if not live.closed:
                await self._resume(conn, live)
        try:
            async for frame in conn:
                await self.side.on_frame(self, conn, frame)
        except RemoteProtocolError as err:
            # The host sent something we must not accept: tell it why, drop the link, append nothing.
            log.warning("link to %s: host violated the protocol: %s (%s)", self.peer_id[:15], err.code, err.message)
            await conn.aclose(err.close_code, close_reason(err.code, err.message))
            raise
        except StorageFailed as err:
            # We could not save an event the host sent (the core is rolled back, nothing acknowledged):
            # drop the link, so that after redialling the host resends everything after our last seq.
            reason = close_reason("storage_failed", f"the guest could not save an event ({err.reason})")
            await conn.aclose(CLOSE_STORAGE, reason)
            raise LinkClosed(CLOSE_STORAGE, reason, by_peer=False) from None

    async def _resume(self, conn: PeerConnection, live: LiveRoom) -> None:
        """Re-sync the room and resubmit the outbox. A queued move is bound to the head it was signed on
        (its `prev`), so the host appends it only if the room is still where its author saw it; one the
        room has already moved past is dropped here rather than sent to be refused."""
        live.link_up = True
        await conn.send({"t": "sync", "room": live.room_id, "after": live.state.seq})
        for row in self.store.outbox(live.room_id):
            if _passed(live, row):
                self.store.drop_outbox(live.room_id, row.sid)
                log.info("room %s: dropped queued move %s: the room has moved past it", live.room_id, row.sid)
                continue
            await conn.send({"t": "submit", "room": live.room_id, "sid": row.sid, "env": row.envelope})
        live.bump()

    def _disconnected(self) -> None:
        self.conn = None
        for live in self.rooms.values():
            if live.link_up:
                live.link_up = False
                live.bump()

    def fail_join(self, room_id: str, error: ApiError) -> None:
        join = self.joins.pop(room_id, None)
        if join is not None:
            join.error = error
            join.done.set()


def _passed(live: LiveRoom, row: OutboxRow) -> bool:
    """The room already holds this queued move, or another event at its seq: the host can never append it."""
    if live.core.original(row.sid) is not None:
        return True
    try:
        return open_envelope(row.envelope, verify=False).header.seq <= live.state.seq
    except LocalProtocolError:
        return True  # not a move we could ever send


def _invite_message(code: str | None) -> str:
    return {
        "bad_invite": "the host did not accept this invite (wrong secret or room); ask for a fresh link",
        "invite_used": "this invite has already been used by another guest; ask the host for a new link",
        "invite_expired": "this invite has expired; ask the host for a new link",
    }.get(code or "", "the host refused the invite")


class GuestSide:
    """Our side of the rooms we joined: one `HostLink` per host daemon, joins, submissions, and the local
    end of a room whose host vanished."""

    def __init__(
        self, rooms: Rooms, *, identity: Identity, static_key: bytes, tuning: Tuning, nursery: trio.Nursery
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.identity = identity
        self.static_key = static_key
        self.link_options = tuning.link_options
        self.send_timeout = tuning.send_timeout
        self.max_backoff = tuning.max_backoff
        self.guest_grace_s = tuning.guest_grace
        self.nursery = nursery
        self.links: dict[str, HostLink] = {}
        # Where LAN discovery last saw a peer id (set by the composition root when discovery runs).
        self.lan_addrs: Callable[[str], list[tuple[str, int]]] = lambda peer_id: []
        self.on_met: Callable[[bytes], None] = lambda peer_key: None  # a room now binds us to this host

    def dial(self, addr: tuple[str, int], peer_id: str, **kw: Any) -> AbstractAsyncContextManager[PeerConnection]:
        """A secure connection to the host daemon `peer_id` at `addr`, as this daemon."""
        options: dict[str, Any] = {**self.link_options, **kw}
        return dial_peer(
            addr,
            identity=self.identity,
            static_private=self.static_key,
            expected_peer_id=peer_id,
            **options,
        )

    def wake_links(self) -> None:
        """Redial every host now (our storage works again after a failure that dropped the links)."""
        for link in self.links.values():
            link.wake.set()

    def link_for(self, peer_id: str, addrs: list[tuple[str, int]]) -> HostLink:
        link = self.links.get(peer_id)
        if link is None:
            link = self.links[peer_id] = HostLink(self, peer_id, list(addrs))
            self.nursery.start_soon(link.run)
        else:
            for addr in addrs:  # a newer join URL may know better addresses: try those first
                if addr in link.addrs:
                    link.addrs.remove(addr)
            link.addrs[:0] = list(addrs)
        return link

    def attach(self, live: LiveRoom) -> None:
        """Resume a guest room restored from the store."""
        addrs = [(h, int(p)) for h, p in live.meta.get("addrs", [])]
        link = self.link_for(live.meta["host_peer_id"], addrs)
        link.rooms[live.room_id] = live
        link.wake.set()
        self.nursery.start_soon(self.local_deadline, live)

    # -- joining --------------------------------------------------------------------------------------

    async def join(self, url: JoinURL, *, label: str, meta: dict[str, Any], timeout: float) -> LiveRoom:
        """Present the invite on a connection of its own (it travels only in handshake message 3), then
        take the room over the shared link (`take_room`)."""
        try:
            check_label(label)  # now, not at `joined`: by then the invite is spent and the join half done
        except LocalProtocolError as err:
            raise api_error(err.code, err.message) from None
        existing = self._existing(url.room_id)
        if existing is not None:
            return existing
        deadline = trio.current_time() + timeout
        with trio.move_on_at(deadline) as scope:
            addrs = await self._present_invite(url, timeout)
        if scope.cancelled_caught:
            raise self._too_slow(timeout)
        left = max(deadline - trio.current_time(), 0.001)
        return await self.take_room(url.room_id, url.host_peer_id, addrs, label=label, meta=meta, timeout=left)

    def _existing(self, room_id: str) -> LiveRoom | None:
        existing = self.rooms.lookup(room_id)
        if existing is not None and existing.role != "guest":
            raise ApiError("conflict", "this daemon is the host of that room; a room needs two daemons")
        return existing

    @staticmethod
    def _too_slow(timeout: float) -> ApiError:
        return ApiError(
            "peer_unreachable",
            f"the host did not complete the join within {timeout:g} s; "
            "check the address in the link and that the host's daemon runs",
        )

    async def take_room(
        self,
        room_id: str,
        host_peer_id: str,
        addrs: list[tuple[str, int]],
        *,
        label: str,
        meta: dict[str, Any],
        timeout: float,
    ) -> LiveRoom:
        """The room is bound to our key at the host (an invite was accepted, or its owner approved us):
        sync it from the start on the shared link, and sign `joined` on top of room_created."""
        existing = self._existing(room_id)
        if existing is not None:
            return existing
        link = self.link_for(host_peer_id, addrs)
        if room_id in link.joins:
            raise ApiError("conflict", "a join of this room is already under way")
        pending = PendingJoin(room_id, label, {**meta, "host_peer_id": host_peer_id, "addrs": [list(a) for a in addrs]})
        with trio.move_on_after(timeout) as scope:
            link.joins[room_id] = pending
            try:
                if link.conn is not None:
                    with contextlib.suppress(LinkClosed):  # if it just dropped, the redial syncs the join
                        await link.conn.send({"t": "sync", "room": room_id, "after": -1})
                else:
                    link.wake.set()
                await pending.done.wait()
            finally:
                link.joins.pop(room_id, None)
        if scope.cancelled_caught:
            raise self._too_slow(timeout)
        if pending.error is not None:
            raise pending.error
        assert pending.live is not None
        if pending.live.peer_key is not None:
            self.on_met(pending.live.peer_key)
        return pending.live

    async def _present_invite(self, url: JoinURL, timeout: float) -> list[tuple[str, int]]:
        """The addresses to use from now on (the link's, or where the LAN says the host is)."""
        addrs = list(url.addrs) or await self._find_on_lan(url.host_peer_id, timeout)
        last: Exception | None = None
        for addr in addrs:
            try:
                async with self.dial(addr, url.host_peer_id, invite=url.invite, timeout=timeout):
                    return addrs  # the host accepted: the room is now bound to our key
            except LinkClosed as exc:
                if exc.error_code in ("bad_invite", "invite_used", "invite_expired"):
                    raise ApiError("invite_rejected", _invite_message(exc.error_code)) from None
                last = exc
            except RemoteProtocolError as exc:
                raise ApiError(
                    "peer_unreachable", f"the daemon at that address is not the host named in the link: {exc.message}"
                ) from None
            except (DialFailed, OSError) as exc:
                last = exc
        raise ApiError("peer_unreachable", f"cannot reach the host: {last}")

    async def _find_on_lan(self, peer_id: str, timeout: float) -> list[tuple[str, int]]:
        """A join URL without addresses: wait (a little) for LAN discovery to find the host's peer id."""
        with trio.move_on_after(min(timeout / 2, LAN_WAIT_S)):
            while not (addrs := self.lan_addrs(peer_id)):
                await trio.sleep(0.2)
            return addrs
        raise ApiError(
            "peer_unreachable",
            f"the join URL has no address and the host {peer_id[:15]} is not on the LAN "
            "(both daemons need LAN discovery: clawroomd --lan; `clawroom peers` lists what was found)",
        )

    async def _first_event(self, link: HostLink, conn: PeerConnection, join: PendingJoin, env: bytes) -> None:
        """room_created arrived for a pending join: create the replica, persist it, and sign `joined`."""
        core = GuestRoom(self.identity, room_id=join.room_id, host_key=conn.peer_public_key)
        try:
            event = core.receive(env, now_ms=now_ms())
        except RemoteProtocolError as err:
            link.fail_join(join.room_id, ApiError("conflict", f"the host sent a bad first event: {err.message}"))
            return
        assert event is not None
        live = LiveRoom(
            room_id=join.room_id, role="guest", core=core, meta=join.meta, peer_key=conn.peer_public_key
        )
        live.link_up = True
        try:
            with self.store.transaction():
                self.store.create_room(
                    live.room_id, "guest", live.meta, now_ms(), peer_key=conn.peer_public_key, phase="new"
                )
                self.rooms.commit(live, [event])
        except StorageFailed as err:  # nothing was kept; the new core is dropped
            link.fail_join(join.room_id, err)  # StorageFailed is the API's storage_failed
            return
        self.rooms.add(live)  # its tasks start once `joined` is through
        link.rooms[live.room_id] = live
        join.live = live
        self.nursery.start_soon(self._finish_join, link, live, join)

    async def _finish_join(self, link: HostLink, live: LiveRoom, join: PendingJoin) -> None:
        try:
            await self.submit(live, lambda: Joined(label=join.label), sids.joined())
        except ApiError as err:
            join.error = err
        link.joins.pop(live.room_id, None)
        join.done.set()
        self.rooms.start_tasks(live)  # the same deadline watch and agent a restored room gets

    # -- frames from the host ---------------------------------------------------------------------------

    async def on_frame(self, link: HostLink, conn: PeerConnection, frame: dict[str, Any]) -> None:
        kind, room_id = frame.get("t"), frame.get("room")
        live = link.rooms.get(room_id) if isinstance(room_id, str) else None
        match kind:
            case "event":
                env = frame.get("env")
                if not isinstance(env, bytes):
                    raise RemoteProtocolError("malformed", "event needs `env` bytes")
                if live is None:
                    join = link.joins.get(room_id) if isinstance(room_id, str) else None
                    if join is not None and join.live is None:
                        await self._first_event(link, conn, join, env)
                    return
                await self._event(live, env)
            case "reject":
                sid = frame.get("sid")
                if live is not None and isinstance(sid, str):
                    self.store.drop_outbox(live.room_id, sid)
                    ack = live.acks.get(sid)
                    if ack is not None:
                        ack.code, ack.message = str(frame.get("code", "rejected")), str(frame.get("message", ""))
                        ack.done.set()
                    live.bump()  # a refused queued move no longer holds our turn: the agent may decide again
            case "refused":
                if isinstance(room_id, str):
                    link.fail_join(room_id, ApiError("unknown_room", str(frame.get("message", "refused"))))
                log.warning("host refused room %s: %s", room_id, frame.get("message"))
            case _:
                raise RemoteProtocolError("malformed", f"unknown link message {kind!r}")

    async def _event(self, live: LiveRoom, env: bytes) -> None:
        core = live.guest
        # RemoteProtocolError: the host misbehaved; the link closes and redials
        event = core.receive(env, now_ms=now_ms())
        if event is None:
            return
        self.rooms.commit(live, [event])
        if event.header.author == "guest":
            ack = live.acks.get(event.header.sid)
            if ack is not None:
                ack.event = event
                ack.done.set()

    # -- our submissions ------------------------------------------------------------------------------

    async def submit(
        self, live: LiveRoom, make_body: Callable[[], Body], sid: str, *, expect_seq: int | None = None
    ) -> dict[str, Any]:
        """Sign, queue durably, send, and wait for the host's answer (see `Moves.submit`).

        A move bound to `expect_seq` is signed only on that state and never re-signed: a STALE refusal
        means the host holds events its author did not see, so it ends in `stale_state`. An unbound one
        (join, cancel) is rebuilt and re-signed on top of the event we had not yet seen."""
        link = self.links[live.meta["host_peer_id"]]
        for _attempt in range(3):
            async with live.lock:
                check_seq(expect_seq, live.state.seq)
                if expect_seq is not None and (queued := self.queued_move(live, besides=sid)) is not None:
                    raise ApiError(
                        "conflict",
                        f"our move {queued} is still queued for the host and takes this turn; "
                        "it is sent when the host is reachable",
                        {"queued_sid": queued},
                    )
                try:
                    sub = live.guest.prepare(make_body(), sid=sid, now_ms=now_ms())
                except LocalProtocolError as err:
                    raise api_error(err.code, err.message) from None
                if sub.duplicate:
                    return {"event": sub.events[0].to_json(), "duplicate": True}
                env = sub.events[0].envelope
                self.store.put_outbox(live.room_id, sid, env, now_ms())  # durable before it leaves
                ack = live.acks[sid] = Ack()
                if link.conn is not None:
                    with contextlib.suppress(LinkClosed):  # the outbox resubmits it on reconnect
                        await link.conn.send({"t": "submit", "room": live.room_id, "sid": sid, "env": env})
                with trio.move_on_after(self.send_timeout):
                    await ack.done.wait()
                live.acks.pop(sid, None)
            if ack.event is not None:
                return {"event": ack.event.to_json(), "duplicate": False}
            if not ack.done.is_set():
                return {
                    "queued": True,
                    "sid": sid,
                    "message": "the host is unreachable; the move is saved and will be sent when it is back",
                }
            if ack.code not in STALE:
                raise api_error(ack.code, f"the host refused the move: {ack.message}")
            if expect_seq is not None:
                raise stale_state(expect_seq, live.state.seq, host_ahead=live.state.seq == expect_seq)
            await trio.sleep(0.05)  # the event we had not yet seen is on its way; re-sign on top of it
        raise ApiError("conflict", "the room kept changing while we tried to send; check status and retry")

    def queued_move(self, live: LiveRoom, *, besides: str | None = None) -> str | None:
        """The sid of a move of ours waiting in the outbox that the host can still append (it was signed
        on the room as we hold it): while there is one, our turn is taken (also after a restart)."""
        for row in self.store.outbox(live.room_id):
            if row.sid != besides and not _passed(live, row):
                return row.sid
        return None

    # -- when the host is gone for good ----------------------------------------------------------------

    async def local_deadline(self, live: LiveRoom) -> None:
        """The host decides deadlines, but a host that vanished cannot: past the room deadline plus a
        grace period we end the room on our side only, saying so.

        deadline_ms is on the host's clock, so it is never compared with ours (SPEC §9): the time the host's
        latest event left, by the host's own reckoning (deadline_ms - its ts), runs on our monotonic clock
        from when we saw that event (events restored from our store: from now). Clock skew cancels out."""
        spec = live.state.spec
        if spec is None or spec.deadline_ms is None:
            return
        seen, due = -1, 0
        while not live.closed:
            changed = live.changed  # before reading the log, so no event slips past
            latest = next(e for e in reversed(live.core.log) if e.header.author == "host")
            if latest.header.seq != seen:
                seen = latest.header.seq
                due = mono_ms() + max(spec.deadline_ms - latest.header.ts, 0) + int(self.guest_grace_s * 1000)
            delay = (due - mono_ms()) / 1000
            if delay <= 0:
                break
            with trio.move_on_after(delay):
                await changed.wait()
        if live.closed:
            return
        result = {
            "status": "timeout",
            "local": True,
            "outcomes": dict(live.state.agreed),
            "reason": "the host stayed unreachable past the room's deadline; "
            "this result is ours alone, not signed by the host",
        }
        while True:  # saved before it is shown: a result the disk refused is retried, not half-applied
            try:
                self.store.update_room(live.room_id, phase="closed", result=result, now_ms=now_ms())
                break
            except StorageFailed:
                await trio.sleep(1.0)
                if live.closed:
                    return
        live.local_result = result
        live.bump()
        log.warning("room %s: host unreachable past the deadline; ended locally", live.room_id)
