"""The two room objects: the host (authoritative sequencer) and the guest (verifying replica).

Both run every event, their own and the peer's, through `rules.transition`, so they accept exactly the
same transcripts and end with identical chain heads. Neither does I/O: bytes in, signed events out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from . import sids
from .envelope import SignedEvent, open_envelope, seal
from .errors import LocalProtocolError, RemoteProtocolError, as_remote
from .events import (
    MAX_CLOCK_SKEW_MS,
    Body,
    CloseProposed,
    ConsultEnded,
    ConsultStarted,
    Header,
    Joined,
    Message,
    Role,
    RoomClosed,
    RoomCreated,
)
from .identity import Identity
from .rules import RoomState, outcome_digest, transition


@dataclass(frozen=True, kw_only=True, slots=True)
class Appended:
    """The events one call appended, in order (the event and any close it made inevitable; none for a
    `tick` with nothing due), or with `duplicate` the original event of a retried sid. A guest's
    `prepare` returns the event it signed, which is appended only when the host sends it back."""

    events: tuple[SignedEvent, ...]
    duplicate: bool = False


class _Room:
    """What both room objects share: this side's copy of the chain (state, log, sid index), signing its
    own events against the head, replay from the store and rollback of what could not be stored."""

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
        st = self.state
        # If our clock stepped back (or the peer's runs ahead, within the bound), date the event as early as
        # the skew rule allows: our own events, a deadline's close included, are never refused for it.
        ts = now_ms if st.seq < 0 else max(now_ms, st.last_ts - MAX_CLOCK_SKEW_MS)
        return Header(
            room=st.room_id,
            seq=st.seq + 1,
            prev=st.head,
            author=self.role,
            key=self.identity.public_key,
            ts=ts,
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


TIMER_MARKS = 8  # appends whose prior timers HostRoom keeps for a rollback


@dataclass(frozen=True, kw_only=True, slots=True)
class Timers:
    """The host's deadline clocks, in monotonic ms of this daemon: when the awaited side's current wait
    began, when each consulting side began, and the room deadline. Immutable, so that undoing an append
    restores them with one assignment."""

    waiting_since: int = 0
    consulting_since: Mapping[Role, int] = field(default_factory=dict)
    deadline_at: int | None = None


def _check_not_ahead(event: SignedEvent, now_ms: int) -> None:
    """The upper half of the skew rule: nothing dated far into our future (SPEC §9). Not applied on replay
    from our own store, where `now` is later anyway."""
    ahead = event.header.ts - now_ms
    if ahead > MAX_CLOCK_SKEW_MS:
        raise RemoteProtocolError(
            "bad_timestamp",
            f"event #{event.header.seq} is dated {ahead / 1000:.0f} s ahead of our clock "
            f"(at most {MAX_CLOCK_SKEW_MS // 1000} s allowed): the {event.header.author}'s clock is wrong",
        )


class HostRoom(_Room):
    """Authoritative: validates, sequences, signs its own events and appends the guest's.

    It also applies the deadlines, on the monotonic clock (`mono_ms`) the daemon passes in: each timer
    starts when this object appended the event that started it. The transcript's `ts` values are their
    authors' claims and start no timer, so a peer's clock cannot move our deadlines (SPEC §9).
    """

    role: Role = "host"

    def __init__(self, identity: Identity, state: RoomState) -> None:
        super().__init__(identity, state)
        self.timers = Timers()
        # The timers as they were before each of the last few appends, so that `rollback` (a commit the
        # daemon could not save) restores them too: a dropped close must not leave the room without its
        # deadlines. One commit holds at most an event and its follow-up close, so a few marks suffice.
        self._timers_before: dict[int, Timers] = {}

    @classmethod
    def create(
        cls, identity: Identity, *, room_id: str, spec: RoomCreated, now_ms: int, mono_ms: int, sid: str | None = None
    ) -> HostRoom:
        room = cls(identity, RoomState(room_id=room_id, host_key=identity.public_key))
        room.send(spec, sid=sids.create() if sid is None else sid, now_ms=now_ms, mono_ms=mono_ms)
        return room

    @classmethod
    def restore(
        cls, identity: Identity, room_id: str, envelopes: Iterable[bytes], *, now_ms: int, mono_ms: int
    ) -> HostRoom:
        """Rebuild from our store. When the events arrived is not known, so the running turn and
        consultation timers start afresh now (SPEC §9)."""
        room = cls(identity, RoomState(room_id=room_id, host_key=identity.public_key))
        room.replay(envelopes)
        room.timers = Timers(
            waiting_since=mono_ms,
            consulting_since=dict.fromkeys(room.state.consulting, mono_ms),
            deadline_at=room._deadline_at(now_ms, mono_ms),
        )
        return room

    def _deadline_at(self, now_ms: int, mono_ms: int) -> int | None:
        """deadline_ms is our own wall-clock claim (the host wrote it): read it against our wall clock, once."""
        spec = self.state.spec
        return None if spec is None or spec.deadline_ms is None else mono_ms + spec.deadline_ms - now_ms

    def _apply(self, event: SignedEvent, new_state: RoomState, *, now_ms: int, mono_ms: int) -> SignedEvent:
        """Append, and start the timers this event starts: the turn's on the kinds that begin a wait (as
        SPEC §9 lists them), the consultation's on consult_started."""
        self._append(event, new_state)
        t, author = self.timers, event.header.author
        self._timers_before[event.header.seq] = t
        self._timers_before.pop(event.header.seq - TIMER_MARKS, None)
        match event.body:
            case ConsultStarted():
                t = replace(t, consulting_since={**t.consulting_since, author: mono_ms})
            case ConsultEnded():
                rest = {r: since for r, since in t.consulting_since.items() if r != author}
                t = replace(t, consulting_since=rest, waiting_since=mono_ms)
            case RoomCreated():
                t = replace(t, waiting_since=mono_ms, deadline_at=self._deadline_at(now_ms, mono_ms))
            case Joined() | Message() | CloseProposed():
                t = replace(t, waiting_since=mono_ms)
            case RoomClosed():
                t = Timers()
        self.timers = t
        return event

    def rollback(self, seq: int) -> tuple[SignedEvent, ...]:
        restored = self._timers_before.get(seq + 1)
        dropped = super().rollback(seq)
        if dropped:
            assert restored is not None, "rolled back further than one commit"
            self.timers = restored
        return dropped

    def send(self, body: Body, *, sid: str, now_ms: int, mono_ms: int) -> Appended:
        """Our own (host) event; raises LocalProtocolError if the protocol forbids it now. `now_ms` (wall
        clock) dates it; `mono_ms` (monotonic) starts its timers."""
        if (done := self.original(sid)) is not None:
            return Appended(events=(done,), duplicate=True)
        event, new_state = self._sign_own(body, sid, now_ms)
        self._apply(event, new_state, now_ms=now_ms, mono_ms=mono_ms)
        return Appended(events=(event, *self._follow_ups(now_ms, mono_ms)))

    def receive(self, data: bytes, *, now_ms: int, mono_ms: int, from_key: bytes | None = None) -> Appended:
        """A guest submission; raises RemoteProtocolError (room unchanged) if it is not acceptable. `now_ms`
        (our wall clock) bounds its `ts`; `mono_ms` (our monotonic clock) is when it arrived."""
        try:
            event = open_envelope(data)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        if event.header.author != "guest" or (from_key is not None and event.header.key != from_key):
            raise RemoteProtocolError("wrong_author", "only the connected guest may submit events to this room")
        if event.header.room != self.room_id:
            raise RemoteProtocolError("wrong_room", f"submission is for room {event.header.room}, not {self.room_id}")
        if (done := self.original(event.header.sid, "guest")) is not None:
            return Appended(events=(done,), duplicate=True)
        _check_not_ahead(event, now_ms)
        try:
            new_state = transition(self.state, event.header, event.body)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        self._apply(event, new_state, now_ms=now_ms, mono_ms=mono_ms)
        return Appended(events=(event, *self._follow_ups(now_ms, mono_ms)))

    def close(self, status: str, *, reason: str, now_ms: int, mono_ms: int, sid: str) -> Appended:
        """End the room with a status the host may decide alone (timeout, cancelled, error, turn limit)."""
        outcome = self.state.outcome(status)
        body = RoomClosed(outcome=outcome, digest=outcome_digest(self.room_id, outcome), reason=reason)
        return self.send(body, sid=sid, now_ms=now_ms, mono_ms=mono_ms)

    def _follow_ups(self, now_ms: int, mono_ms: int) -> list[SignedEvent]:
        """Events the host owes right after an append: the close that a countersignature, an error or
        the last allowed turn makes inevitable."""
        st = self.state
        if st.phase == "closing":
            assert st.closing_status is not None
            status, reason = st.closing_status, st.closing_reason
        elif st.phase == "active" and st.spec and st.turns >= st.spec.max_turns and not st.all_agreed:
            status = "turn_limit_reached"
            reason = f"all {st.spec.max_turns} turns used without agreement on every field"
        else:
            return []
        sid = sids.follow_up_close(st.seq + 1)
        return list(self.close(status, reason=reason, now_ms=now_ms, mono_ms=mono_ms, sid=sid).events)

    def next_deadline(self) -> tuple[int, str] | None:
        """The earliest (monotonic time ms, reason) at which `tick` would end the room, if any."""
        st = self.state
        if st.spec is None or st.phase not in ("invited", "active", "delivering"):
            return None
        spec = st.spec
        t = self.timers
        candidates: list[tuple[int, str]] = []
        if t.deadline_at is not None:
            candidates.append((t.deadline_at, "the room's deadline passed"))
        if st.phase != "invited":
            if spec.answer_timeout_ms is not None:
                for role in sorted(st.consulting):
                    since = t.consulting_since[role]
                    candidates.append((since + spec.answer_timeout_ms, f"the {role}'s owner did not answer in time"))
            awaited = st.awaited
            if spec.turn_timeout_ms is not None and awaited is not None and awaited not in st.consulting:
                candidates.append(
                    (t.waiting_since + spec.turn_timeout_ms, f"the {awaited} did not move within the turn deadline")
                )
        return min(candidates) if candidates else None

    def tick(self, *, now_ms: int, mono_ms: int) -> Appended:
        """Apply the deadlines due by `mono_ms` (the only way time enters the core); `now_ms` dates the close."""
        due = self.next_deadline()
        if due is None or mono_ms < due[0]:
            return Appended(events=())
        sid = sids.timeout(self.state.seq + 1)
        return self.close("timeout", reason=due[1], now_ms=now_ms, mono_ms=mono_ms, sid=sid)


class GuestRoom(_Room):
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

    def prepare(self, body: Body, *, sid: str, now_ms: int) -> Appended:
        """Sign our next event for submission; it is appended only when the host sends it back."""
        if (done := self.original(sid)) is not None:
            return Appended(events=(done,), duplicate=True)
        event, _ = self._sign_own(body, sid, now_ms)
        self._pending[sid] = event.envelope
        return Appended(events=(event,))

    def receive(self, data: bytes, *, now_ms: int) -> SignedEvent | None:
        """An event the host broadcast; None if we already hold exactly it (a replay after reconnecting).
        `now_ms` is our wall clock, against which its `ts` must not run far ahead."""
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
        _check_not_ahead(event, now_ms)
        try:
            new_state = transition(self.state, event.header, event.body)
        except LocalProtocolError as err:
            raise as_remote(err) from None
        self._pending.pop(event.header.sid, None)
        return self._append(event, new_state)


__all__ = ["GuestRoom", "HostRoom", "Appended", "Timers"]
