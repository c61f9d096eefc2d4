"""The two room objects: the host (authoritative sequencer) and the guest (verifying replica).

Both run every event, their own and the peer's, through `rules.transition`, so they accept exactly the
same transcripts and end with identical chain heads. Neither does I/O: bytes in, signed events out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .envelope import SignedEvent, open_envelope, seal
from .errors import LocalProtocolError, RemoteProtocolError, as_remote
from .events import Body, Header, Role, RoomClosed, RoomCreated
from .identity import Identity
from .rules import RoomState, outcome_digest, transition


@dataclass(frozen=True, kw_only=True, slots=True)
class Submission:
    """What a submit produced: the events appended (in order), or the original ones for a retried id."""

    events: tuple[SignedEvent, ...]
    duplicate: bool = False


class _Replica:
    role: Role

    def __init__(self, identity: Identity, state: RoomState) -> None:
        self.identity = identity
        self.state = state
        self.log: list[SignedEvent] = []
        self._by_sid: dict[tuple[Role, str], int] = {}  # sids are scoped by author

    @property
    def room_id(self) -> str:
        return self.state.room_id

    @property
    def head(self) -> bytes:
        return self.state.head

    def _append(self, event: SignedEvent, new_state: RoomState) -> SignedEvent:
        self.state = replace(new_state, head=event.hash)
        self.log.append(event)
        self._by_sid.setdefault((event.header.author, event.header.sid), event.header.seq)
        return event

    def original(self, sid: str, author: Role | None = None) -> SignedEvent | None:
        seq = self._by_sid.get((author or self.role, sid))
        return None if seq is None else self.log[seq]

    def events_after(self, seq: int) -> list[SignedEvent]:
        return self.log[max(seq + 1, 0) :]

    def _header(self, sid: str, now_ms: int) -> Header:
        return Header(
            room=self.state.room_id,
            seq=self.state.seq + 1,
            prev=self.state.head,
            author=self.role,
            key=self.identity.public_key,
            ts=now_ms,
            sid=sid,
        )

    def _sign_own(self, body: Body, sid: str, now_ms: int) -> tuple[SignedEvent, RoomState]:
        header = self._header(sid, now_ms)
        new_state = transition(self.state, header, body)  # LocalProtocolError: our caller's mistake
        return seal(self.identity, header, body), new_state

    def replay(self, envelopes: Iterable[bytes], *, verify: bool = False) -> None:
        """Rebuild from our own store (already verified when first received, hence verify=False)."""
        for data in envelopes:
            event = open_envelope(data, verify=verify)
            self._append(event, transition(self.state, event.header, event.body))

    def rollback(self, seq: int) -> tuple[SignedEvent, ...]:
        """Forget every event after `seq` (the daemon could not store them) and return them.

        The room becomes what replaying the kept events gives: exactly the room a restart would rebuild
        from the store, whatever the forgotten events changed (phase, turns, proposals, sid index).
        Costs one replay of the kept events, without signature checks: a failure path only."""
        if seq >= self.state.seq:
            return ()
        dropped = tuple(self.log[max(seq + 1, 0) :])
        kept = [e.envelope for e in self.log[: max(seq + 1, 0)]]
        self.state = RoomState(room_id=self.state.room_id, host_key=self.state.host_key)
        self.log = []
        self._by_sid = {}
        self.replay(kept)
        return dropped


class HostRoom(_Replica):
    """Authoritative: validates, sequences, signs its own events and appends the guest's."""

    role: Role = "host"

    @classmethod
    def create(
        cls, identity: Identity, *, room_id: str, spec: RoomCreated, now_ms: int, sid: str = "create"
    ) -> HostRoom:
        room = cls(identity, RoomState(room_id=room_id, host_key=identity.public_key))
        room.send(spec, sid=sid, now_ms=now_ms)
        return room

    @classmethod
    def restore(cls, identity: Identity, room_id: str, envelopes: Iterable[bytes]) -> HostRoom:
        room = cls(identity, RoomState(room_id=room_id, host_key=identity.public_key))
        room.replay(envelopes)
        return room

    def send(self, body: Body, *, sid: str, now_ms: int) -> Submission:
        """Our own (host) event; raises LocalProtocolError if the protocol forbids it now."""
        if (done := self.original(sid)) is not None:
            return Submission(events=(done,), duplicate=True)
        event, new_state = self._sign_own(body, sid, now_ms)
        return Submission(events=(self._append(event, new_state), *self._follow_ups(now_ms)))

    def receive(self, data: bytes, *, now_ms: int, from_key: bytes | None = None) -> Submission:
        """A guest submission; raises RemoteProtocolError (room unchanged) if it is not acceptable."""
        try:
            event = open_envelope(data)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        if event.header.author != "guest" or (from_key is not None and event.header.key != from_key):
            raise RemoteProtocolError("wrong_author", "only the connected guest may submit events to this room")
        if event.header.room != self.room_id:
            raise RemoteProtocolError("wrong_room", f"submission is for room {event.header.room}, not {self.room_id}")
        if (done := self.original(event.header.sid, "guest")) is not None:
            return Submission(events=(done,), duplicate=True)
        try:
            new_state = transition(self.state, event.header, event.body)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        return Submission(events=(self._append(event, new_state), *self._follow_ups(now_ms)))

    def close(self, status: str, *, reason: str, now_ms: int, sid: str) -> Submission:
        """End the room with a status the host may decide alone (timeout, cancelled, error, turn limit)."""
        outcome = self.state.outcome(status)
        body = RoomClosed(outcome=outcome, digest=outcome_digest(self.room_id, outcome), reason=reason)
        return self.send(body, sid=sid, now_ms=now_ms)

    def _follow_ups(self, now_ms: int) -> list[SignedEvent]:
        """Events the host owes right after an append: the close that a countersignature, an error or
        the last allowed turn makes inevitable."""
        st = self.state
        if st.phase == "closing":
            assert st.closing_status is not None
            return list(
                self.close(st.closing_status, reason=st.closing_reason, now_ms=now_ms, sid=f"close-{st.seq + 1}").events
            )
        if st.phase == "active" and st.spec and st.turns >= st.spec.max_turns and not st.all_agreed:
            reason = f"all {st.spec.max_turns} turns used without agreement on every field"
            return list(
                self.close("turn_limit_reached", reason=reason, now_ms=now_ms, sid=f"close-{st.seq + 1}").events
            )
        return []

    def next_deadline(self) -> tuple[int, str] | None:
        """The earliest (time ms, reason) at which `tick` would end the room, if any."""
        st = self.state
        if st.spec is None or st.phase not in ("invited", "active", "delivering"):
            return None
        spec = st.spec
        candidates: list[tuple[int, str]] = []
        if spec.deadline_ms is not None:
            candidates.append((spec.deadline_ms, "the room's deadline passed"))
        if st.phase != "invited":
            for role, since in st.consulting.items():
                if spec.answer_timeout_ms is not None:
                    candidates.append((since + spec.answer_timeout_ms, f"the {role}'s owner did not answer in time"))
            awaited = st.awaited
            if spec.turn_timeout_ms is not None and awaited is not None and awaited not in st.consulting:
                candidates.append(
                    (st.turn_started_ms + spec.turn_timeout_ms, f"the {awaited} did not move within the turn deadline")
                )
        return min(candidates) if candidates else None

    def tick(self, now_ms: int) -> Submission:
        """Apply deadlines as of `now_ms` (the only way time enters the core)."""
        due = self.next_deadline()
        if due is None or now_ms < due[0]:
            return Submission(events=())
        return self.close("timeout", reason=due[1], now_ms=now_ms, sid=f"timeout-{self.state.seq + 1}")


class GuestRoom(_Replica):
    """Verifying replica: signs its own events for the host to sequence, checks everything the host sends."""

    role: Role = "guest"

    def __init__(self, identity: Identity, *, room_id: str, host_key: bytes) -> None:
        super().__init__(identity, RoomState(room_id=room_id, host_key=host_key))
        self._pending: dict[str, bytes] = {}

    @classmethod
    def restore(cls, identity: Identity, *, room_id: str, host_key: bytes, envelopes: Iterable[bytes]) -> GuestRoom:
        room = cls(identity, room_id=room_id, host_key=host_key)
        room.replay(envelopes)
        return room

    def prepare(self, body: Body, *, sid: str, now_ms: int) -> Submission:
        """Sign our next event for submission; it is appended only when the host sends it back."""
        if (done := self.original(sid)) is not None:
            return Submission(events=(done,), duplicate=True)
        event, _ = self._sign_own(body, sid, now_ms)
        self._pending[sid] = event.envelope
        return Submission(events=(event,))

    def receive(self, data: bytes) -> SignedEvent | None:
        """An event the host broadcast; None if we already hold exactly it (a replay after reconnecting)."""
        data = bytes(data)
        try:
            event = open_envelope(data, verify=data not in self._pending.values())
        except LocalProtocolError as err:
            raise as_remote(err) from None
        seq = event.header.seq
        if 0 <= seq < len(self.log):
            if self.log[seq].envelope == data:
                return None
            raise RemoteProtocolError("bad_chain", f"the host sent a different event #{seq} than it sent before")
        try:
            new_state = transition(self.state, event.header, event.body)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        self._pending.pop(event.header.sid, None)
        return self._append(event, new_state)


__all__ = ["GuestRoom", "HostRoom", "Submission"]
