"""Our own side's moves in a room: create, send, close, cancel. Each is validated by the core, signed,
sequenced by the host (ourselves, or the host daemon over the link) and committed before it is answered.

`expect_seq` binds a move to the room as its author saw it (DESIGN §4, SPEC §15.7).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..core import sids
from ..core.errors import LocalProtocolError
from ..core.events import Body, CloseAccepted, CloseProposed, ErrorEvent, Message, Move, RoomCreated
from ..core.identity import Identity
from ..core.ids import new_room_id
from ..core.invites import new_invite
from ..core.joinurl import JoinURL
from ..core.room import Appended, HostRoom
from ..core.rules import outcome_digest
from .clock import mono_ms, now_ms
from .errors import ApiError, api_error, check_seq, core_refusal_is_bad_value
from .live import LiveRoom
from .rooms import Rooms

log = logging.getLogger("clawroomd.rooms")


class GuestSubmit(Protocol):
    """How a guest room's move reaches the host (guest_side.GuestSide.submit)."""

    def __call__(
        self, live: LiveRoom, make_body: Callable[[], Body], sid: str, *, expect_seq: int | None = None
    ) -> Awaitable[dict[str, Any]]: ...


class Moves:
    def __init__(
        self,
        rooms: Rooms,
        identity: Identity,
        *,
        forward: Callable[[LiveRoom], Awaitable[None]],
        guest_submit: GuestSubmit,
        check_outgoing: Callable[[str, Any], None] = lambda room_id, body: None,
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.identity = identity
        self.forward = forward  # a host room's new events to the guest, then to our watchers
        self.guest_submit = guest_submit
        self.check_outgoing = check_outgoing  # the leak guard: raises before anything of ours is signed

    async def create_room(
        self, spec: RoomCreated, *, advertise: list[tuple[str, int]], meta: dict[str, Any], ttl_ms: int | None
    ) -> LiveRoom:
        room_id = new_room_id(secrets.token_hex(8))
        now = now_ms()
        secret = secrets.token_bytes(16)
        record = new_invite(room_id, secret, now, **({"ttl_ms": ttl_ms} if ttl_ms else {}))
        url = JoinURL(room_id=room_id, host_peer_id=self.identity.peer_id, addrs=tuple(advertise), secret=secret)
        core = HostRoom.create(self.identity, room_id=room_id, spec=spec, now_ms=now, mono_ms=mono_ms())
        live = LiveRoom(room_id=room_id, role="host", core=core, meta={**meta, "join_url": url.format()}, peer_key=None)
        with self.store.transaction():
            self.store.create_room(room_id, "host", live.meta, now)
            self.store.put_invite(room_id, record.secret_sha256, record.expires_ms)
            self.rooms.commit(live, core.log)
        self.rooms.open(live)
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
        sid = sid or sids.local(secrets.token_hex(8))
        if (done := live.core.original(sid)) is not None:
            return {"event": done.to_json(), "duplicate": True}
        if live.local_result is not None:
            raise ApiError("room_closed", "this room has ended: " + str(live.local_result.get("reason", "")))
        def guarded() -> Body:
            body = make_body()
            self.check_outgoing(live.room_id, body)
            return body

        if live.role == "host":
            async with live.lock:
                check_seq(expect_seq, live.state.seq)
                try:
                    sub: Appended = live.host.send(guarded(), sid=sid, now_ms=now_ms(), mono_ms=mono_ms())
                except LocalProtocolError as err:
                    raise api_error(err.code, err.message) from None
                if not sub.duplicate:
                    self.rooms.commit(live, sub.events, wake=False)
            await self.forward(live)
            return {"event": sub.events[0].to_json(), "duplicate": sub.duplicate}
        return await self.guest_submit(live, guarded, sid, expect_seq=expect_seq)

    async def send(
        self, live: LiveRoom, text: str, raw_moves: list[Any], *, expect_seq: int, client_sid: str | None = None
    ) -> dict[str, Any]:
        """One message of ours, bound to the room as of `expect_seq`. A repeated `client_sid` answers with
        the original event and sends nothing."""
        if client_sid is not None and not sids.is_client_sid(client_sid):
            raise ApiError("invalid_params", f"sid must be {sids.CLIENT_SID_RULE}")
        wire_sid = None if client_sid is None else sids.from_client(client_sid)
        if wire_sid is not None and (done := live.core.original(wire_sid)) is not None:
            return {"event": done.to_json(), "duplicate": True}  # a retry: the original answer, unrevalidated
        check_seq(expect_seq, live.state.seq)  # before the moves read the state: they take what the caller saw
        with core_refusal_is_bad_value():
            body = Message(text=text, moves=self._moves(live, raw_moves))  # built once, never on a later state
        return await self.submit(live, lambda: body, sid=wire_sid, expect_seq=expect_seq)

    @staticmethod
    def _moves(live: LiveRoom, raw: list[Any]) -> tuple[Move, ...]:
        """Moves from their JSON form; `accept` without a value takes the peer's standing proposal in the
        state the move is bound to (the caller has checked it is still current), which is what a person
        or agent means by "accept price": the value it saw."""
        st = live.state
        peer = "guest" if live.role == "host" else "host"
        moves = []
        for m in raw:
            if not isinstance(m, dict) or not isinstance(m.get("op"), str) or not isinstance(m.get("field"), str):
                raise ApiError(
                    "invalid_params", 'each move is {"op": propose|accept|reject, "field": name, "value"?: text}'
                )
            value = m.get("value")
            if m["op"] == "accept" and value is None:
                value = st.proposals.get(m["field"], {}).get(peer)  # type: ignore[call-overload]
                if value is None:
                    raise ApiError(
                        "conflict",
                        f"the {peer} has no standing proposal for {m['field']!r} to accept",
                        {"protocol_code": "no_such_proposal"},
                    )
            refs = m.get("refs", [])
            if not isinstance(refs, list):
                raise ApiError("invalid_params", "refs is a list of text")
            with core_refusal_is_bad_value():
                moves.append(Move(op=m["op"], field=m["field"], value=value, refs=tuple(refs)))
        return tuple(moves)

    def _checked_reason(self, live: LiveRoom, reason: str) -> str:
        self.check_outgoing(live.room_id, reason)
        return reason

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
                        reason=self._checked_reason(live, reason) or "cancelled by the host's owner",
                        now_ms=now_ms(),
                        mono_ms=mono_ms(),
                        sid=sids.cancel(secrets.token_hex(4)),
                    )
                except LocalProtocolError as err:
                    raise api_error(err.code, err.message) from None
                self.rooms.commit(live, sub.events)
            return {"event": sub.events[-1].to_json()}
        return await self.submit(
            live, lambda: ErrorEvent(code="cancelled", message=reason[:500]), expect_seq=expect_seq
        )
