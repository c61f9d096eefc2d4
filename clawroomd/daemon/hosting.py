"""The host's side of the peer link: admit guests, stream room events to them, take their submissions,
and apply deadlines.

Admission (`authorize`, during the handshake): a guest presenting an invite must match the stored
secret (constant time), unused and unexpired, and the invite is consumed atomically with binding the
room to the guest's identity key. A guest without an invite is admitted only if some room is bound
to its key (reconnects authenticate by key alone). Either way nothing application-level is read first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ..core.errors import CLOSE_INVITE, CLOSE_WRONG_PEER, RemoteProtocolError
from ..core.identity import peer_id_for
from ..core.invites import Invite, InviteRecord, check_invite
from ..link import LinkClosed, PeerConnection, serve_peers
from .live import LiveRoom, now_ms

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger("clawroomd.host")

# A guest submission refused for one of these is an attack or a broken peer: close the connection.
# Anything else (a race on the turn, a stale head) is answered with a `reject` frame and the link stays.
FATAL_CODES = frozenset({"bad_signature", "wrong_author", "malformed", "too_large", "unsupported_version"})


class HostSide:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    async def serve(self, host: str, port: int, *, task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        await serve_peers(
            host,
            port,
            identity=self.sup.identity,
            static_private=self.sup.static_key,
            authorize=self.authorize,
            handler=self.serve_guest,
            task_status=task_status,
            **self.sup.link_options,
        )

    # -- admission -----------------------------------------------------------------------------------

    async def authorize(self, peer_key: bytes, invite: Invite | None) -> None:
        store = self.sup.store
        if invite is None:
            if not any(live.role == "host" and live.peer_key == peer_key for live in self.sup.rooms.values()):
                raise RemoteProtocolError(
                    "unknown_peer", "no room here is bound to your key; join with an invite", CLOSE_WRONG_PEER
                )
            return
        row = store.get_invite(invite.room_id)
        live = self.sup.rooms.get(invite.room_id)
        if row is None or live is None or live.role != "host":
            raise RemoteProtocolError("bad_invite", "the invite secret is not valid for this room", CLOSE_INVITE)
        record = InviteRecord(
            room_id=row.room_id, secret_sha256=row.secret_hash, expires_ms=row.expires_ms, used=row.used_ms is not None
        )
        now = now_ms()
        if record.used and row.guest_key == peer_key:
            check_invite(
                InviteRecord(room_id=row.room_id, secret_sha256=row.secret_hash, expires_ms=row.expires_ms),
                invite,
                min(now, row.expires_ms - 1),
            )
            return  # the same guest retrying a join whose answer it lost
        check_invite(record, invite, now)
        with store.transaction():
            if not store.consume_invite(invite.room_id, peer_key, now):
                raise RemoteProtocolError("invite_used", "this invite has already been used to join", CLOSE_INVITE)
            store.update_room(invite.room_id, peer_key=peer_key, now_ms=now)
        live.peer_key = peer_key
        log.info("room %s: invite accepted from %s", live.room_id, peer_id_for(peer_key))

    # -- one connected guest daemon ------------------------------------------------------------------

    async def serve_guest(self, conn: PeerConnection) -> None:
        async with trio.open_nursery() as nursery:
            try:
                async for frame in conn:
                    await self._on_frame(conn, frame, nursery)
            except LinkClosed:
                pass
            except RemoteProtocolError as err:
                await conn.aclose(err.close_code, f"{err.code}: {err.message}"[:120])
            nursery.cancel_scope.cancel()
        for live in self.sup.rooms.values():
            if live.role == "host" and live.peer_key == conn.peer_public_key and live.pusher is None:
                live.link_up = False

    def _room_for(self, conn: PeerConnection, room_id: object) -> LiveRoom | None:
        live = self.sup.rooms.get(room_id) if isinstance(room_id, str) else None
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
                if live.pusher is not None:
                    live.pusher.cancel()  # the guest re-synced, perhaps on a newer connection
                scope = trio.CancelScope()
                live.pusher = scope
                nursery.start_soon(self._push, conn, live, after, scope)
            case "submit":
                await self._submit(conn, live, frame)
            case _:
                raise RemoteProtocolError("malformed", f"unknown link message {kind!r}")

    async def _push(self, conn: PeerConnection, live: LiveRoom, after: int, scope: trio.CancelScope) -> None:
        """Stream every event after `after`, then each new one, to this guest connection."""
        seq = after
        live.link_up = True
        live.bump()
        with scope:
            try:
                while True:
                    changed = live.changed
                    for event in live.core.events_after(seq):
                        await conn.send({"t": "event", "room": live.room_id, "env": event.envelope})
                        seq = event.header.seq
                    if live.state.phase == "closed":
                        return
                    await changed.wait()
            except LinkClosed:
                pass
            finally:
                if live.pusher is scope:
                    live.pusher = None
                    live.link_up = False
                    live.bump()

    async def _submit(self, conn: PeerConnection, live: LiveRoom, frame: dict[str, Any]) -> None:
        env, sid = frame.get("env"), frame.get("sid")
        if not isinstance(env, bytes) or not isinstance(sid, str):
            raise RemoteProtocolError("malformed", "submit needs `env` (bytes) and `sid` (text)")
        async with live.lock:
            try:
                sub = live.core.receive(env, now_ms=now_ms(), from_key=conn.peer_public_key)  # type: ignore[union-attr]
            except RemoteProtocolError as err:
                log.info("room %s: refused a guest submission: %s (%s)", live.room_id, err.code, err.message)
                if err.code in FATAL_CODES:
                    raise
                await conn.send(
                    {"t": "reject", "room": live.room_id, "sid": sid[:64], "code": err.code, "message": err.message}
                )
                return
            if sub.duplicate:
                # The guest may have missed our broadcast: answer with the original event directly.
                await conn.send({"t": "event", "room": live.room_id, "env": sub.events[0].envelope})
                return
            self.sup.commit(live, sub.events)

    # -- deadlines -------------------------------------------------------------------------------------

    async def deadlines(self, live: LiveRoom) -> None:
        """Close the room with `timeout` when the core says a deadline has passed (the core reads no clock)."""
        while not live.closed:
            changed = live.changed
            due = live.core.next_deadline()  # type: ignore[union-attr]
            if due is None:
                await changed.wait()
                continue
            delay = (due[0] - now_ms()) / 1000
            if delay > 0:
                with trio.move_on_after(delay):
                    await changed.wait()
                continue
            async with live.lock:
                sub = live.core.tick(now_ms())  # type: ignore[union-attr]
                self.sup.commit(live, sub.events)
            if sub.events:
                log.info("room %s: %s", live.room_id, due[1])
