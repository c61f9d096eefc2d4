"""Room state and the pure function that validates and applies one event to it.

`transition` either returns a new RoomState or raises LocalProtocolError and changes nothing: the state
is immutable, so a rejected event cannot leave a room half-applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from . import cbor
from .errors import LocalProtocolError
from .events import (
    EVENTS_BASE,
    EVENTS_PER_TURN,
    MAX_CLOCK_SKEW_MS,
    MAX_CONSULTS_PER_TURN,
    ROLES,
    Body,
    CloseAccepted,
    CloseProposed,
    ConsultEnded,
    ConsultStarted,
    ErrorEvent,
    Header,
    Joined,
    Message,
    Outcome,
    Role,
    RoomClosed,
    RoomCreated,
    other,
)
from .table import Phase, next_phase

ZERO_HASH = bytes(32)
HOST_CLOSE_STATUSES = ("turn_limit_reached", "timeout", "cancelled", "error")


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingClose:
    """A close_proposed not yet countersigned: who proposed it, the outcome and its digest."""

    proposer: Role
    outcome: Outcome
    digest: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomState:
    """Everything the rules need to judge the next event, derived from the transcript alone (both sides
    hold equal states for equal transcripts). Immutable: `transition` returns a new one.

    | field | what it holds |
    | --- | --- |
    | `room_id`, `host_key` | the room and the host's key, known before the first event |
    | `phase` | where the room is in the transition table (SPEC §6) |
    | `seq`, `head` | the last event's number (-1 before any) and hash: the next event's `seq - 1` and `prev` |
    | `guest_key`, `guest_label` | bound by `joined` |
    | `spec` | the room_created body: fields, turn limit, who speaks first, deadlines |
    | `turns` | messages so far (one message is one turn) |
    | `proposals` | field -> side -> the value it proposes and the other side has not yet answered |
    | `agreed` | field -> the value both sides agreed (a later proposal reopens it) |
    | `consulting` | the sides now waiting on their owner's answer |
    | `consults` | consultations each side started since the last message (bounded per turn) |
    | `pending_close` | a close proposal awaiting the other side's countersignature |
    | `closing_status`, `closing_reason` | how the room must close, once phase is `closing` |
    | `last_ts` | the last event's `ts`: only the lower bound on the next one's, never a deadline |
    | `result` | the room_closed body once closed |
    """

    room_id: str
    host_key: bytes
    phase: Phase = "new"
    seq: int = -1
    head: bytes = ZERO_HASH
    guest_key: bytes | None = None
    spec: RoomCreated | None = None
    guest_label: str = ""
    turns: int = 0
    proposals: Mapping[str, Mapping[Role, str]] = field(default_factory=dict)
    agreed: Mapping[str, str] = field(default_factory=dict)
    consulting: frozenset[Role] = frozenset()
    consults: Mapping[Role, int] = field(default_factory=dict)  # consultations started since the last message
    pending_close: PendingClose | None = None
    closing_status: str | None = None
    closing_reason: str = ""
    last_ts: int = 0  # the last event's `ts`: only for the sanity check on the next one, never for a deadline
    result: RoomClosed | None = None

    @property
    def turn(self) -> Role | None:
        """Whose message is next, or None when no message is legal now."""
        if self.spec is None or self.phase not in ("active", "delivering") or self.turns >= self.spec.max_turns:
            return None
        return self.spec.first if self.turns % 2 == 0 else other(self.spec.first)

    @property
    def awaited(self) -> Role | None:
        """The one side the room waits on: the side asked to countersign a close, else whose turn it is."""
        if self.phase == "delivering" and self.pending_close is not None:
            return other(self.pending_close.proposer)
        return self.turn

    @property
    def awaiting(self) -> frozenset[Role]:
        """Who is expected to act now: the awaited side, or both once every field is agreed and no turn
        is left (either may propose the close); nobody before the room is active, nor once it is closing.
        A side consulting its owner still counts as expected (see `your_turn`)."""
        if self.phase not in ("active", "delivering"):
            return frozenset()
        if self.awaited is not None:
            return frozenset((self.awaited,))
        return frozenset(ROLES) if self.all_agreed else frozenset()

    def your_turn(self, role: Role) -> bool:
        """`role` is expected to act now and free to (not waiting on its owner's answer)."""
        return role in self.awaiting and role not in self.consulting

    def key_of(self, role: Role) -> bytes | None:
        return self.host_key if role == "host" else self.guest_key

    def outcome(self, status: str | None = None) -> Outcome:
        """What closing now would record; the status defaults to what the agreements imply."""
        assert self.spec is not None
        required = self.spec.field_names
        agreed = {name: self.agreed[name] for name in required if name in self.agreed}
        unresolved = tuple(name for name in required if name not in agreed)
        if status is None:
            status = "agreement_reached" if not unresolved else "partial_agreement" if agreed else "no_agreement"
        return Outcome(status=status, outcomes=agreed, unresolved=unresolved)

    @property
    def all_agreed(self) -> bool:
        return self.spec is not None and all(n in self.agreed for n in self.spec.field_names)

    @property
    def events(self) -> int:
        return self.seq + 1


def max_events(max_turns: int) -> int:
    """The most events a room with this turn limit may ever hold (SPEC §11)."""
    return EVENTS_PER_TURN * max_turns + EVENTS_BASE


def _reserved(state: RoomState) -> int:
    """Events the room may still need without any consultation: a message and a close proposal for every
    turn left, a close proposal after the last one, the other side's pending consult_ended, and the close
    (close_accepted or error, then room_closed). `consult_started` may only spend what lies beyond."""
    assert state.spec is not None
    left = state.spec.max_turns - state.turns
    return 2 * left + 1 + 1 + 2


def outcome_digest(room_id: str, outcome: Outcome) -> bytes:
    """What both sides sign when they close: SHA-256 over the canonical CBOR of the outcome."""
    return hashlib.sha256(
        cbor.encode(
            {
                "room": room_id,
                "status": outcome.status,
                "outcomes": dict(outcome.outcomes),
                "unresolved": list(outcome.unresolved),
            }
        )
    ).digest()


def _fail(code: str, message: str) -> LocalProtocolError:
    return LocalProtocolError(code, message)


def _check_position(state: RoomState, h: Header) -> None:
    if h.room != state.room_id:
        raise _fail("wrong_room", f"event is for room {h.room}, not {state.room_id}")
    if h.seq != state.seq + 1:
        raise _fail("bad_sequence", f"expected event #{state.seq + 1}, got #{h.seq}")
    if h.prev != state.head:
        raise _fail("bad_chain", f"event #{h.seq} does not follow the current head of the transcript")


def _check_ts(state: RoomState, h: Header) -> None:
    """Only the lower bound: it depends on the transcript alone, so it holds on replay too. The upper bound
    (not far ahead of the receiver's clock) is the room objects' check on what arrives."""
    if h.seq > 0 and h.ts < state.last_ts - MAX_CLOCK_SKEW_MS:
        raise _fail(
            "bad_timestamp",
            f"event #{h.seq} is dated {(state.last_ts - h.ts) / 1000:.0f} s before the event it follows "
            f"(at most {MAX_CLOCK_SKEW_MS // 1000} s allowed): the {h.author}'s clock is wrong",
        )


def _check_author_key(state: RoomState, h: Header, kind: str) -> None:
    if h.author == "guest" and kind == "joined":
        if h.key == state.host_key:
            raise _fail("wrong_author", "the host cannot join its own room as the guest")
        return
    if h.key != state.key_of(h.author):
        raise _fail("wrong_author", f"event claims to be by the {h.author} but is signed by another key")


def transition(state: RoomState, h: Header, body: Body) -> RoomState:
    """Validate `body` by `h.author` against `state`; return the state after it. Raises, never mutates."""
    _check_position(state, h)
    to = next_phase(h.author, state.phase, body.kind)
    if to is None:
        if state.phase == "closed":
            raise _fail("room_closed", "the room is closed; nothing more can be added")
        raise _fail("illegal_event", f"the {h.author} may not send {body.kind} while the room is {state.phase}")
    _check_author_key(state, h, body.kind)
    _check_ts(state, h)
    new = replace(state, phase=to, seq=h.seq, last_ts=h.ts)
    match body:
        case RoomCreated():
            return replace(new, spec=body)
        case Joined():
            return replace(new, guest_key=h.key, guest_label=body.label)
        case Message():
            return _message(state, new, h, body)
        case ConsultStarted():
            return _consult_started(state, new, h.author)
        case ConsultEnded():
            if h.author not in state.consulting:
                raise _fail("not_consulting", f"the {h.author} has no consultation to end")
            return replace(new, consulting=state.consulting - {h.author})
        case CloseProposed():
            _not_consulting(state, h.author)
            _check_outcome(state, body.outcome, body.digest, state.outcome())
            return replace(new, pending_close=PendingClose(proposer=h.author, outcome=body.outcome, digest=body.digest))
        case CloseAccepted():
            _not_consulting(state, h.author)
            pending = state.pending_close
            assert pending is not None  # the table only allows close_accepted while delivering
            if pending.proposer == h.author:
                raise _fail("illegal_event", "a side cannot accept its own close proposal")
            if body.digest != pending.digest:
                raise _fail("outcome_mismatch", "close_accepted names a different outcome than the one proposed")
            return replace(new, closing_status=pending.outcome.status, closing_reason="both sides signed the outcome")
        case ErrorEvent():
            status = "cancelled" if body.code == "cancelled" else "error"
            reason = f"{h.author}: {body.code}" + (f" ({body.message})" if body.message else "")
            return replace(new, closing_status=status, closing_reason=reason, pending_close=None)
        case RoomClosed():
            _room_closed(state, body)
            return replace(new, result=body, pending_close=None, consulting=frozenset())
    raise _fail("illegal_event", f"unknown event body {type(body).__name__}")  # pragma: no cover


def _consult_started(state: RoomState, new: RoomState, role: Role) -> RoomState:
    """Consultations use no turn, so they are what a flood would be made of: bounded per turn and per room."""
    assert state.spec is not None  # the table allows consult_started only once the room exists
    if role in state.consulting:
        raise _fail("consulting", f"the {role} is already consulting its owner")
    started = state.consults.get(role, 0)
    if started >= MAX_CONSULTS_PER_TURN:
        raise _fail(
            "consult_limit",
            f"the {role} has consulted its owner {started} times this turn (at most {MAX_CONSULTS_PER_TURN})",
        )
    cap = max_events(state.spec.max_turns)
    if state.events + 2 + _reserved(state) > cap:  # this consultation's two events must fit besides them
        raise _fail(
            "event_limit",
            f"the room holds {state.events} events; at most {cap} are allowed, and the rest are kept "
            "for the turns left and the close",
        )
    return replace(new, consulting=state.consulting | {role}, consults={**state.consults, role: started + 1})


def _not_consulting(state: RoomState, role: Role) -> None:
    if role in state.consulting:
        raise _fail("consulting", f"the {role} is consulting its owner and cannot act until it answers")


def _check_outcome(state: RoomState, got: Outcome, digest: bytes, expected: Outcome) -> None:
    if got != expected:
        raise _fail("outcome_mismatch", "the outcome does not match the fields agreed in the transcript")
    if digest != outcome_digest(state.room_id, got):
        raise _fail("outcome_mismatch", "the outcome digest is wrong")


def _message(state: RoomState, new: RoomState, h: Header, body: Message) -> RoomState:
    assert state.spec is not None
    if state.turns >= state.spec.max_turns:
        raise _fail("turn_limit", f"all {state.spec.max_turns} turns are used; only closing is possible now")
    if state.turn != h.author:
        raise _fail("not_your_turn", f"it is the {state.turn}'s turn, not the {h.author}'s")
    _not_consulting(state, h.author)
    peer = other(h.author)
    proposals = {name: dict(sides) for name, sides in state.proposals.items()}
    agreed = dict(state.agreed)
    names = state.spec.field_names
    for move in body.moves:
        if move.field not in names:
            raise _fail("unknown_field", f"{move.field!r} is not a field of this room (fields: {', '.join(names)})")
        sides = proposals.setdefault(move.field, {})
        standing = sides.get(peer)
        if move.op == "propose":
            assert move.value is not None
            sides[h.author] = move.value
            agreed.pop(move.field, None)  # a new value reopens an agreed field
        elif standing is None:
            raise _fail("no_such_proposal", f"the {peer} has no standing proposal for {move.field!r} to {move.op}")
        elif move.op == "accept":
            if move.value != standing:
                raise _fail(
                    "no_such_proposal", f"the {peer} proposed {standing!r} for {move.field!r}, not {move.value!r}"
                )
            agreed[move.field] = standing
            del proposals[move.field]
        else:
            del sides[peer]
    return replace(
        new,
        turns=state.turns + 1,
        proposals={n: s for n, s in proposals.items() if s},
        agreed=agreed,
        pending_close=None,
        consults={},
    )


def _room_closed(state: RoomState, body: RoomClosed) -> None:
    status = body.outcome.status
    if state.phase == "closing":
        if status != state.closing_status:
            raise _fail("outcome_mismatch", f"the room must close as {state.closing_status}, not {status}")
    elif status not in HOST_CLOSE_STATUSES:
        raise _fail("outcome_mismatch", f"{status} needs a close that both sides signed")
    elif status == "turn_limit_reached" and (state.spec is None or state.turns < state.spec.max_turns):
        raise _fail("outcome_mismatch", "turn_limit_reached before the turns are used up")
    assert state.spec is not None  # the table never allows room_closed before room_created
    _check_outcome(state, body.outcome, body.digest, state.outcome(status))
