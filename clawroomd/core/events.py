"""Room events: one frozen, keyword-only, self-validating dataclass per kind, and their wire form.

A room event on the wire is the canonical-CBOR map below, signed by its author as a COSE_Sign1
(see `envelope.py`). The common header fields are added by the room objects; callers build only bodies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .errors import LocalProtocolError
from .ids import ROOM_ID_RULE, is_room_id
from .sids import SID_RULE, is_sid

PROTOCOL_VERSION = 1
Role = Literal["host", "guest"]
ROLES: tuple[Role, Role] = ("host", "guest")

RESULT_STATUSES = (
    "agreement_reached",
    "partial_agreement",
    "no_agreement",
    "turn_limit_reached",
    "timeout",
    "cancelled",
    "error",
)

# Limits are part of the protocol: both sides enforce the same numbers (SPEC.md, "Limits").
MAX_TOPIC = 200
MAX_GOAL = 2000
MAX_FIELDS = 32
MAX_DESCRIPTION = 500
MAX_TURNS = 1000
MAX_TEXT = 8000
MAX_MOVES = 32
MAX_VALUE = 2000
MAX_REFS = 16
MAX_REF = 200
MAX_REASON = 500
MAX_LABEL = 64
# `ts` is its author's claim, never a deadline's clock (SPEC §9): an event dated more than this ahead of the
# receiver's clock, or this much before the event it follows, is refused as `bad_timestamp`.
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
# Events that use no turn are bounded too (SPEC §11): each side may start this many consultations per turn,
# and a room holds at most EVENTS_PER_TURN * max_turns + EVENTS_BASE events in all (see `rules.max_events`).
MAX_CONSULTS_PER_TURN = 3
EVENTS_PER_TURN = 6
EVENTS_BASE = 16

FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def other(role: Role) -> Role:
    return "guest" if role == "host" else "host"


# Characters a single-line string (label, topic, field description, ref) may not hold: controls (Cc),
# format characters (Cf: bidi overrides and isolates, invisible tags) save the two joiners that emoji and
# Indic or Persian text need, line and paragraph separators (Zl, Zp), lone surrogates (Cs). Categories,
# not a list of code points, so that another implementation can apply the same rule.
_NOT_IN_A_LINE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_JOINERS = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ


def _text(name: str, value: object, limit: int, *, empty_ok: bool = False, line: bool = False) -> None:
    if not isinstance(value, str):
        raise LocalProtocolError("bad_value", f"{name} must be text")
    if len(value) > limit:
        raise LocalProtocolError("too_large", f"{name} is {len(value)} characters; the limit is {limit}")
    if not empty_ok and not value.strip():
        raise LocalProtocolError("bad_value", f"{name} must not be empty")
    if line:
        for ch in value:
            if ch not in _JOINERS and unicodedata.category(ch) in _NOT_IN_A_LINE:
                raise LocalProtocolError(
                    "bad_value", f"{name} must be one line of printable text; it holds the character U+{ord(ch):04X}"
                )
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: not Unicode text, and CBOR could not carry it
            raise LocalProtocolError("bad_value", f"{name} holds a lone surrogate at character {exc.start}") from None


def check_label(label: object) -> None:
    """A display name: up to MAX_LABEL characters of one printable line, no space at either end; may be empty."""
    _text("label", label, MAX_LABEL, empty_ok=True, line=True)
    assert isinstance(label, str)
    if label != label.strip():
        raise LocalProtocolError("bad_value", "label must not start or end with white space")


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise LocalProtocolError("bad_value", f"{name} must be an integer from {lo} to {hi}")


def _opt_ms(name: str, value: object) -> None:
    if value is not None:
        _int(name, value, 1, 2**53)


def check_field_name(name: object) -> None:
    if not isinstance(name, str) or not FIELD_RE.match(name):
        raise LocalProtocolError(
            "bad_value",
            f"field name {name!r} must be lowercase letters, digits and _ (up to 64), starting with a letter",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class FieldSpec:
    """One field the room must settle: its name (what moves and outcomes key on) and what it means."""

    name: str
    description: str = ""

    def __post_init__(self) -> None:
        check_field_name(self.name)
        _text("field description", self.description, MAX_DESCRIPTION, empty_ok=True, line=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class Move:
    """propose: offer `value` for `field`; accept: take the peer's standing proposal, which must be exactly
    `value`; reject: turn down the peer's standing proposal. `refs` cite provenance (facts, owner answers)."""

    op: Literal["propose", "accept", "reject"]
    field: str
    value: str | None = None
    refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in ("propose", "accept", "reject"):
            raise LocalProtocolError("bad_value", f"unknown move {self.op!r}: use propose, accept or reject")
        check_field_name(self.field)
        if self.op == "reject":
            if self.value is not None:
                raise LocalProtocolError("bad_value", "a reject move carries no value")
        else:
            _text(f"value of {self.field}", self.value, MAX_VALUE)
        if not isinstance(self.refs, tuple) or len(self.refs) > MAX_REFS:
            raise LocalProtocolError("bad_value", f"refs must be a list of at most {MAX_REFS} items")
        for ref in self.refs:
            _text("ref", ref, MAX_REF, line=True)


class Body:
    """Base of every event body; `kind` names it on the wire."""

    kind: ClassVar[str]


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomCreated(Body):
    """The host opens the room: what to settle, the turn limit, who speaks first and the deadlines."""

    kind: ClassVar[str] = "room_created"
    topic: str
    goal: str
    fields: tuple[FieldSpec, ...]
    max_turns: int = 20
    first: Role = "host"
    turn_timeout_ms: int | None = None
    deadline_ms: int | None = None
    answer_timeout_ms: int | None = None
    label: str = ""  # the host's display name, as `joined` carries the guest's

    def __post_init__(self) -> None:
        _text("topic", self.topic, MAX_TOPIC, line=True)
        check_label(self.label)
        _text("goal", self.goal, MAX_GOAL, empty_ok=True)
        if not isinstance(self.fields, tuple) or not 1 <= len(self.fields) <= MAX_FIELDS:
            raise LocalProtocolError("bad_value", f"a room needs 1 to {MAX_FIELDS} required fields")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise LocalProtocolError("bad_value", "required field names must be distinct")
        _int("max_turns", self.max_turns, 1, MAX_TURNS)
        if self.first not in ROLES:
            raise LocalProtocolError("bad_value", "first must be host or guest")
        _opt_ms("turn_timeout_ms", self.turn_timeout_ms)
        _opt_ms("deadline_ms", self.deadline_ms)
        _opt_ms("answer_timeout_ms", self.answer_timeout_ms)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True, kw_only=True, slots=True)
class Joined(Body):
    """The guest enters; its key signs this event and is the guest's key in the room from now on."""

    kind: ClassVar[str] = "joined"
    label: str = ""

    def __post_init__(self) -> None:
        check_label(self.label)


@dataclass(frozen=True, kw_only=True, slots=True)
class Message(Body):
    """One turn: text for the other side and the moves it makes on the fields."""

    kind: ClassVar[str] = "message"
    text: str
    moves: tuple[Move, ...] = ()

    def __post_init__(self) -> None:
        _text("message text", self.text, MAX_TEXT, empty_ok=bool(self.moves))
        if not isinstance(self.moves, tuple) or len(self.moves) > MAX_MOVES:
            raise LocalProtocolError("bad_value", f"a message carries at most {MAX_MOVES} moves")
        touched = [m.field for m in self.moves]
        if len(set(touched)) != len(touched):
            raise LocalProtocolError("bad_value", "one message may move each field at most once")


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsultStarted(Body):
    """The author's agent is asking its owner; the question itself never leaves the author's machine."""

    kind: ClassVar[str] = "consult_started"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsultEnded(Body):
    """The author's owner answered (or the author gave up asking); the answer stays on its machine."""

    kind: ClassVar[str] = "consult_ended"


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What a close would record: agreed values, fields left open, and the status these imply."""

    status: str
    outcomes: Mapping[str, str]
    unresolved: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.status not in RESULT_STATUSES:
            raise LocalProtocolError("bad_value", f"unknown result status {self.status!r}")
        if not isinstance(self.outcomes, Mapping):
            raise LocalProtocolError("bad_value", "outcomes must be a map of field to value")
        for name, value in self.outcomes.items():
            check_field_name(name)
            _text(f"outcome {name}", value, MAX_VALUE)
        for name in self.unresolved:
            check_field_name(name)


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseProposed(Body):
    """The author signs the outcome the transcript implies and asks the other side to countersign."""

    kind: ClassVar[str] = "close_proposed"
    outcome: Outcome
    digest: bytes

    def __post_init__(self) -> None:
        _digest(self.digest)


@dataclass(frozen=True, kw_only=True, slots=True)
class CloseAccepted(Body):
    """The countersignature: signing this event signs `digest`, the proposal's outcome digest."""

    kind: ClassVar[str] = "close_accepted"
    digest: bytes

    def __post_init__(self) -> None:
        _digest(self.digest)


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomClosed(Body):
    """The host's last event: the result, as both sides signed it or as the host may decide alone."""

    kind: ClassVar[str] = "room_closed"
    outcome: Outcome
    digest: bytes
    reason: str = ""

    def __post_init__(self) -> None:
        _digest(self.digest)
        _text("reason", self.reason, MAX_REASON, empty_ok=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorEvent(Body):
    """The author abandons the room: `cancelled` by its owner, or a fault it cannot recover from."""

    kind: ClassVar[str] = "error"
    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not CODE_RE.match(self.code):
            raise LocalProtocolError("bad_value", "error code must be a short snake_case word")
        _text("error message", self.message, MAX_REASON, empty_ok=True)


def _digest(value: object) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise LocalProtocolError("bad_value", "digest must be 32 bytes (SHA-256)")


BODY_TYPES: dict[str, type[Body]] = {
    cls.kind: cls
    for cls in (
        RoomCreated,
        Joined,
        Message,
        ConsultStarted,
        ConsultEnded,
        CloseProposed,
        CloseAccepted,
        RoomClosed,
        ErrorEvent,
    )
}
KINDS: tuple[str, ...] = tuple(BODY_TYPES)


@dataclass(frozen=True, kw_only=True, slots=True)
class Header:
    """Where an event sits in the chain and who signed it; the room objects fill it, callers never do."""

    room: str
    seq: int
    prev: bytes
    author: Role
    key: bytes
    ts: int
    sid: str

    def __post_init__(self) -> None:
        if not is_room_id(self.room):
            raise LocalProtocolError("bad_value", f"room id {self.room!r} is malformed ({ROOM_ID_RULE})")
        _int("seq", self.seq, 0, 2**32)
        if not isinstance(self.prev, bytes) or len(self.prev) != 32:
            raise LocalProtocolError("bad_value", "prev must be a 32-byte hash")
        if self.author not in ROLES:
            raise LocalProtocolError("bad_value", "author must be host or guest")
        if not isinstance(self.key, bytes) or len(self.key) != 32:
            raise LocalProtocolError("bad_value", "key must be a 32-byte Ed25519 public key")
        _int("ts", self.ts, 0, 2**53)
        if not is_sid(self.sid):
            raise LocalProtocolError("bad_value", f"submit id must be {SID_RULE}")


# ---- wire form ---------------------------------------------------------------------------------------


def _outcome_to_wire(o: Outcome) -> dict[str, Any]:
    return {"status": o.status, "outcomes": dict(o.outcomes), "unresolved": list(o.unresolved)}


def body_to_wire(body: Body) -> dict[str, Any]:
    match body:
        case RoomCreated():
            out: dict[str, Any] = {
                "topic": body.topic,
                "goal": body.goal,
                "fields": [{"name": f.name, "description": f.description} for f in body.fields],
                "max_turns": body.max_turns,
                "first": body.first,
                "label": body.label,
            }
            for name in ("turn_timeout_ms", "deadline_ms", "answer_timeout_ms"):
                if getattr(body, name) is not None:
                    out[name] = getattr(body, name)
            return out
        case Joined():
            return {"label": body.label}
        case Message():
            moves = []
            for m in body.moves:
                wm: dict[str, Any] = {"op": m.op, "field": m.field}
                if m.value is not None:
                    wm["value"] = m.value
                if m.refs:
                    wm["refs"] = list(m.refs)
                moves.append(wm)
            return {"text": body.text, "moves": moves}
        case ConsultStarted() | ConsultEnded():
            return {}
        case CloseProposed():
            return {"outcome": _outcome_to_wire(body.outcome), "digest": body.digest}
        case CloseAccepted():
            return {"digest": body.digest}
        case RoomClosed():
            return {"outcome": _outcome_to_wire(body.outcome), "digest": body.digest, "reason": body.reason}
        case ErrorEvent():
            return {"code": body.code, "message": body.message}
    raise LocalProtocolError("bad_value", f"unknown event body {type(body).__name__}")  # pragma: no cover


def header_to_wire(h: Header, kind: str) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "room": h.room,
        "seq": h.seq,
        "prev": h.prev,
        "kind": kind,
        "author": h.author,
        "key": h.key,
        "ts": h.ts,
        "sid": h.sid,
    }


def _exact_keys(obj: object, what: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise LocalProtocolError("malformed", f"{what} must be a map")
    keys = set(obj)
    if not required <= keys:
        raise LocalProtocolError("malformed", f"{what} lacks {sorted(required - keys)}")
    if keys - required - optional:
        raise LocalProtocolError("malformed", f"{what} has unknown keys {sorted(keys - required - optional)}")
    return obj


def _outcome_from_wire(obj: object) -> Outcome:
    d = _exact_keys(obj, "outcome", {"status", "outcomes", "unresolved"})
    if not isinstance(d["outcomes"], dict) or not isinstance(d["unresolved"], list):
        raise LocalProtocolError("malformed", "outcome has the wrong shape")
    return Outcome(status=d["status"], outcomes=d["outcomes"], unresolved=tuple(d["unresolved"]))


def body_from_wire(kind: str, obj: object) -> Body:
    """Build the typed body; TypeError from a wrong-typed field becomes a protocol error."""
    try:
        return _body_from_wire(kind, obj)
    except (TypeError, AttributeError) as exc:
        raise LocalProtocolError("malformed", f"{kind} body is malformed: {exc}") from None


def _body_from_wire(kind: str, obj: object) -> Body:
    match kind:
        case "room_created":
            d = _exact_keys(
                obj,
                kind,
                {"topic", "goal", "fields", "max_turns", "first", "label"},
                frozenset({"turn_timeout_ms", "deadline_ms", "answer_timeout_ms"}),
            )
            if not isinstance(d["fields"], list):
                raise LocalProtocolError("malformed", "fields must be a list")
            specs = tuple(FieldSpec(**_exact_keys(f, "field", {"name", "description"})) for f in d["fields"])
            return RoomCreated(**{**d, "fields": specs})
        case "joined":
            return Joined(**_exact_keys(obj, kind, {"label"}))
        case "message":
            d = _exact_keys(obj, kind, {"text", "moves"})
            if not isinstance(d["moves"], list):
                raise LocalProtocolError("malformed", "moves must be a list")
            moves = []
            for raw in d["moves"]:
                m = _exact_keys(raw, "move", {"op", "field"}, frozenset({"value", "refs"}))
                if "refs" in m and (not isinstance(m["refs"], list) or not m["refs"]):
                    raise LocalProtocolError("malformed", "refs, when present, is a non-empty list")
                moves.append(Move(op=m["op"], field=m["field"], value=m.get("value"), refs=tuple(m.get("refs", ()))))
            return Message(text=d["text"], moves=tuple(moves))
        case "consult_started":
            _exact_keys(obj, kind, set())
            return ConsultStarted()
        case "consult_ended":
            _exact_keys(obj, kind, set())
            return ConsultEnded()
        case "close_proposed":
            d = _exact_keys(obj, kind, {"outcome", "digest"})
            return CloseProposed(outcome=_outcome_from_wire(d["outcome"]), digest=d["digest"])
        case "close_accepted":
            return CloseAccepted(**_exact_keys(obj, kind, {"digest"}))
        case "room_closed":
            d = _exact_keys(obj, kind, {"outcome", "digest", "reason"})
            return RoomClosed(outcome=_outcome_from_wire(d["outcome"]), digest=d["digest"], reason=d["reason"])
        case "error":
            return ErrorEvent(**_exact_keys(obj, kind, {"code", "message"}))
    raise LocalProtocolError("malformed", f"unknown event kind {kind!r}")


def header_from_wire(obj: object) -> tuple[Header, str, object]:
    d = _exact_keys(obj, "event", {"v", "room", "seq", "prev", "kind", "author", "key", "ts", "sid", "body"})
    if d["v"] != PROTOCOL_VERSION:
        raise LocalProtocolError(
            "unsupported_version", f"event protocol version {d['v']!r}; we speak {PROTOCOL_VERSION}"
        )
    if not isinstance(d["kind"], str):
        raise LocalProtocolError("malformed", "kind must be text")
    try:
        h = Header(
            room=d["room"], seq=d["seq"], prev=d["prev"], author=d["author"], key=d["key"], ts=d["ts"], sid=d["sid"]
        )
    except TypeError as exc:  # pragma: no cover - Header checks types itself
        raise LocalProtocolError("malformed", str(exc)) from None
    return h, d["kind"], d["body"]


def body_to_json(body: Body) -> dict[str, Any]:
    """JSON-friendly view (digests as hex) for transcripts and the local API."""
    wire = body_to_wire(body)
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in wire.items()}


__all__ = [
    "BODY_TYPES",
    "KINDS",
    "RESULT_STATUSES",
    "ROLES",
    "Body",
    "CloseAccepted",
    "CloseProposed",
    "ConsultEnded",
    "ConsultStarted",
    "ErrorEvent",
    "FieldSpec",
    "Header",
    "Joined",
    "Message",
    "Move",
    "Outcome",
    "Role",
    "RoomClosed",
    "RoomCreated",
    "body_from_wire",
    "body_to_json",
    "body_to_wire",
    "check_field_name",
    "check_label",
    "header_from_wire",
    "header_to_wire",
    "other",
]
