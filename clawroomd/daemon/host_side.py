"""The host's side of the peer link: admit guests, stream room events to them, take their submissions,
and apply deadlines.

Admission (`authorize`, during the handshake): a guest presenting an invite must match the stored
secret (constant time), unused and unexpired, and the invite is consumed atomically with binding the
room to the guest's identity key. A guest without an invite is admitted only if some room is bound
to its key (reconnects authenticate by key alone). Either way nothing application-level is read first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..core.envelope import SignedEvent
from ..core.errors import CLOSE_INVITE, CLOSE_WRONG_PEER, RemoteProtocolError
from ..core.identity import Identity, peer_id_for
from ..core.invites import InviteRecord, JoinRequest, Presented, check_invite, matches
from ..link import LinkClosed, PeerConnection, serve_peers
from ..link.connection import close_reason
from .clock import mono_ms, now_ms
from .errors import CLOSE_STORAGE
from .live import LiveRoom
from .rooms import Rooms
from .store import StorageFailed
from .tuning import Tuning

log = logging.getLogger("clawroomd.host")

# A guest submission refused for one of these is an attack or a broken peer: close the connection.
# Anything else (a race on the turn, a stale head) is answered with a `reject` frame and the link stays.
FATAL_CODES = frozenset({"bad_signature", "wrong_author", "malformed", "too_large", "unsupported_version"})
STORAGE_RETRY_S = 1.0  # a deadline whose close could not be saved is retried this often
MAX_BATCH = 64  # frames of one guest connection taken together (group commit of their submissions)


def _reject(live: LiveRoom, sid: str, err: RemoteProtocolError) -> dict[str, Any]:
    return {"t": "reject", "room": live.room_id, "sid": sid[:64], "code": err.code, "message": err.message}


class GuestFeed:
    """A host room's events on their way to one guest connection: in seq order, each sent once.

    The task that commits an event sends it at once (`flush`), so the guest hears of it before we spend
    time on local replies and watchers; the pusher task streams the backlog after a `sync` and whatever
    other paths commit (deadlines, cancel).
    """

    def __init__(self, conn: PeerConnection, live: LiveRoom, after: int) -> None:
        self.conn = conn
        self.live = live
        self.sent = after  # the last seq this connection has been sent
        self.scope = trio.CancelScope()  # the pusher task's
        self._busy = False

    async def flush(self) -> None:
        """Send every committed event the guest has not been sent yet; raises LinkClosed."""
        if self._busy:
            return  # the task already sending loops until it has sent everything, this event included
        self._busy = True
        done = False
        try:
            while pending := self.live.core.events_after(self.sent):
                for event in pending:
                    await self.conn.send({"t": "event", "room": self.live.room_id, "env": event.envelope})
                    self.sent = event.header.seq
            done = True
        finally:
            self._busy = False
            if not done:
                self.live.bump()  # a flush cut short: let the pusher pick up what is left


def _no_requests(peer_key: bytes, request: JoinRequest) -> None:
    raise RemoteProtocolError("unknown_room", "no such room here, or it does not take LAN join requests", CLOSE_INVITE)


async def _no_request_serving(conn: PeerConnection, request: JoinRequest) -> None:
    raise RemoteProtocolError("unknown_room", "no such room here, or it does not take LAN join requests", CLOSE_INVITE)


class HostSide:
    """Our side of the rooms we host: the peer listener, guest admission, the feeds and the deadlines."""

    def __init__(self, rooms: Rooms, *, identity: Identity, static_key: bytes, tuning: Tuning) -> None:
        self.rooms = rooms
        self.identity = identity
        self.static_key = static_key
        self.link_options = tuning.link_options
        self.peer_limits = tuning.peer_limits()
        self.feeds: dict[str, GuestFeed] = {}  # room id -> the feed to its connected guest
        self.on_met: Callable[[bytes], None] = lambda peer_key: None  # a room is now bound to this guest
        # LAN join requests (lan_join.JoinRequests, set by the composition root): check during the
        # handshake, serve once admitted. Without them every request is refused like an unknown room.
        self.check_request: Callable[[bytes, JoinRequest], None] = _no_requests
        self.serve_request: Callable[[PeerConnection, JoinRequest], Awaitable[None]] = _no_request_serving

    async def serve(self, host: str, port: int, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        options: dict[str, Any] = {**self.link_options, "limits": self.peer_limits}
        await serve_peers(
            host,
            port,
            identity=self.identity,
            static_private=self.static_key,
            authorize=self.authorize,
            handler=self.serve_guest,
            task_status=task_status,
            **options,
        )

    # -- admission -----------------------------------------------------------------------------------

    async def authorize(self, peer_key: bytes, invite: Presented | None) -> None:
        store = self.rooms.store
        if isinstance(invite, JoinRequest):
            self.check_request(peer_key, invite)
            return
        if invite is None:
            if not any(live.role == "host" and live.peer_key == peer_key for live in self.rooms):
                raise RemoteProtocolError(
                    "unknown_peer", "no room here is bound to your key; join with an invite", CLOSE_WRONG_PEER
                )
            return
        row = store.get_invite(invite.room_id)
        live = self.rooms.lookup(invite.room_id)
        if row is None or live is None or live.role != "host":
            raise RemoteProtocolError("bad_invite", "the invite secret is not valid for this room", CLOSE_INVITE)
        record = InviteRecord(
            room_id=row.room_id, secret_sha256=row.secret_hash, expires_ms=row.expires_ms, used=row.used_ms is not None
        )
        now = now_ms()
        if record.used and row.guest_key == peer_key and matches(record, invite):
            live.peer_key = peer_key
            return  # the same guest retrying a join whose answer it lost
        check_invite(record, invite, now)
        if live.peer_key is not None and live.peer_key != peer_key:  # its owner admitted another (LAN join)
            raise RemoteProtocolError("invite_used", "this room already has its guest", CLOSE_INVITE)
        try:
            with store.transaction():
                if not store.consume_invite(invite.room_id, peer_key, now):
                    raise RemoteProtocolError("invite_used", "this invite has already been used to join", CLOSE_INVITE)
                store.update_room(invite.room_id, peer_key=peer_key, now_ms=now)
        except StorageFailed as err:  # the invite stays unused: the guest may try again later
            raise RemoteProtocolError(
                "storage_failed", f"the host could not save the join ({err.reason}); try again later", CLOSE_STORAGE
            ) from None
        live.peer_key = peer_key
        self.on_met(peer_key)
        log.info("room %s: invite accepted from %s", live.room_id, peer_id_for(peer_key))

    # -- one connected guest daemon ------------------------------------------------------------------

    async def serve_guest(self, conn: PeerConnection) -> None:
        if isinstance(conn.invite, JoinRequest):
            await self.serve_request(conn, conn.invite)  # a request connection carries nothing else
            return
        async with trio.open_nursery() as nursery:
            try:
                async for frame in conn:
                    await self._on_frames(conn, frame, nursery)
            except LinkClosed:
                pass
            except RemoteProtocolError as err:
                await conn.aclose(err.close_code, close_reason(err.code, err.message))
            except StorageFailed as err:
                # The guest's submission is still in its outbox: it resubmits after redialling (with
                # backoff), by when our disk may work again. Nothing unsaved was sent.
                reason = f"the host could not save your event ({err.reason}); redial later"
                await conn.aclose(CLOSE_STORAGE, close_reason("storage_failed", reason))
            nursery.cancel_scope.cancel()  # ends this connection's feeds, which mark their rooms unlinked

    async def _on_frames(self, conn: PeerConnection, frame: dict[str, Any], nursery: trio.Nursery) -> None:
        """`frame` and whatever else this guest sent that has already arrived, in order. A run of
        submissions for distinct rooms is committed together (`_submit_batch`); anything else, one by one."""
        frames = [frame]
        while len(frames) < MAX_BATCH and (more := conn.receive_nowait()) is not None:
            frames.append(more)
        i = 0
        while i < len(frames):
            run: list[tuple[LiveRoom, dict[str, Any]]] = []
            seen: set[str] = set()
            for f in frames[i:]:
                live = self._room_for(conn, f.get("room")) if f.get("t") == "submit" else None
                # One submission per room per batch (a rollback undoes at most a few appends per room),
                # and none for a room whose lock a local move holds: that one goes through the lock.
                if live is None or live.room_id in seen or live.lock.locked():
                    break
                seen.add(live.room_id)
                run.append((live, f))
            if len(run) > 1:
                await self._submit_batch(conn, run)
                i += len(run)
            else:
                await self._on_frame(conn, frames[i], nursery)
                i += 1

    def _room_for(self, conn: PeerConnection, room_id: object) -> LiveRoom | None:
        live = self.rooms.lookup(room_id) if isinstance(room_id, str) else None
        if live is None or live.role != "host" or live.peer_key != conn.peer_public_key:
            return None
        return live

    async def _on_frame(self, conn: PeerConnection, frame: dict[str, Any], nursery: trio.Nursery) -> None:
        kind, room_id = frame.get("t"), frame.get("room")
        live = self._room_for(conn, room_id)
        if live is None:
            await conn.send(
                {
                    "t": "refused",
                    "room": str(room_id)[:64],
                    "code": "unknown_room",
                    "message": "no such room here, or it is not bound to your key",
                }
            )
            return
        match kind:
            case "sync":
                after = frame.get("after")
                if not isinstance(after, int) or isinstance(after, bool) or after < -1:
                    raise RemoteProtocolError("malformed", "sync needs an integer `after` >= -1")
                if (old := self.feeds.get(live.room_id)) is not None:
                    old.scope.cancel()  # the guest re-synced, perhaps on a newer connection
                feed = self.feeds[live.room_id] = GuestFeed(conn, live, after)
                nursery.start_soon(self._push, feed)
            case "submit":
                await self._submit(conn, live, frame)
            case _:
                raise RemoteProtocolError("malformed", f"unknown link message {kind!r}")

    async def _push(self, feed: GuestFeed) -> None:
        """Stream every event after the guest's `after`, then each new one, to this guest connection."""
        live = feed.live
        live.link_up = True
        live.bump()
        with feed.scope:
            try:
                while True:
                    changed = live.changed
                    await feed.flush()
                    if live.state.phase == "closed" and feed.sent >= live.state.seq:
                        return
                    await changed.wait()
            except LinkClosed:
                pass
            finally:
                if self.feeds.get(live.room_id) is feed:
                    del self.feeds[live.room_id]
                    live.link_up = False
                    live.bump()

    async def forward(self, live: LiveRoom) -> None:
        """After `commit(..., wake=False)`: send the new events to the guest, then wake our own watchers.

        The guest goes first so that its daemon works on the event while we answer our agents (two
        daemons, two cores); woken first, our watchers and replies would run before the send. The send
        returns as soon as the kernel has the bytes; it waits only while the guest does not read.
        """
        try:
            if (feed := self.feeds.get(live.room_id)) is not None:
                with contextlib.suppress(LinkClosed):  # the pusher notices too; the guest re-syncs on redial
                    await feed.flush()
        finally:
            live.bump()

    async def _submit(self, conn: PeerConnection, live: LiveRoom, frame: dict[str, Any]) -> None:
        env, sid = frame.get("env"), frame.get("sid")
        if not isinstance(env, bytes) or not isinstance(sid, str):
            raise RemoteProtocolError("malformed", "submit needs `env` (bytes) and `sid` (text)")
        async with live.lock:
            try:
                sub = live.host.receive(env, now_ms=now_ms(), mono_ms=mono_ms(), from_key=conn.peer_public_key)
            except RemoteProtocolError as err:
                log.info("room %s: refused a guest submission: %s (%s)", live.room_id, err.code, err.message)
                if err.code in FATAL_CODES:
                    raise
                await conn.send(_reject(live, sid, err))
                return
            if sub.duplicate:
                # The guest may have missed our broadcast: answer with the original event directly.
                await conn.send({"t": "event", "room": live.room_id, "env": sub.events[0].envelope})
                return
            self.rooms.commit(live, sub.events, wake=False)
        await self.forward(live)

    async def _submit_batch(self, conn: PeerConnection, run: list[tuple[LiveRoom, dict[str, Any]]]) -> None:
        """Submissions for distinct rooms that arrived together: each checked and appended by its room's
        core as `_submit` does, then all committed in one transaction (one COMMIT for the batch), and only
        then answered. Nothing is awaited between the first append and the commit, so no reader sees an
        unsaved event; if the commit fails, every room is rolled back and nothing is answered."""
        appended: list[tuple[LiveRoom, tuple[SignedEvent, ...]]] = []
        answers: list[tuple[LiveRoom, dict[str, Any] | None]] = []  # None: forward the room's new events
        fatal: RemoteProtocolError | None = None
        for live, frame in run:
            env, sid = frame.get("env"), frame.get("sid")
            if not isinstance(env, bytes) or not isinstance(sid, str):
                fatal = RemoteProtocolError("malformed", "submit needs `env` (bytes) and `sid` (text)")
                break
            try:
                sub = live.host.receive(env, now_ms=now_ms(), mono_ms=mono_ms(), from_key=conn.peer_public_key)
            except RemoteProtocolError as err:
                log.info("room %s: refused a guest submission: %s (%s)", live.room_id, err.code, err.message)
                if err.code in FATAL_CODES:
                    fatal = err
                    break
                answers.append((live, _reject(live, sid, err)))
                continue
            if sub.duplicate:
                answers.append((live, {"t": "event", "room": live.room_id, "env": sub.events[0].envelope}))
                continue
            appended.append((live, sub.events))
            answers.append((live, None))
        self.rooms.commit_many(appended, wake=False)  # StorageFailed: all rolled back, the link closes
        for live, answer in answers:
            if answer is None:
                await self.forward(live)
            else:
                await conn.send(answer)
        if fatal is not None:
            raise fatal

    # -- deadlines -------------------------------------------------------------------------------------

    async def deadlines(self, live: LiveRoom) -> None:
        """Close the room with `timeout` when the core says a deadline has passed. The core reads no clock:
        its deadlines are on our monotonic clock, which we hand it."""
        while not live.closed:
            changed = live.changed
            due = live.host.next_deadline()
            if due is None:
                await changed.wait()
                continue
            delay = (due[0] - mono_ms()) / 1000
            if delay > 0:
                with trio.move_on_after(delay):
                    await changed.wait()
                continue
            async with live.lock:
                sub = live.host.tick(now_ms=now_ms(), mono_ms=mono_ms())
                try:
                    self.rooms.commit(live, sub.events)
                    saved = True
                except StorageFailed:  # rolled back; the deadline is still due: try again shortly
                    saved = False
            if not saved:
                await trio.sleep(STORAGE_RETRY_S)
                continue
            if sub.events:
                log.info("room %s: %s", live.room_id, due[1])
