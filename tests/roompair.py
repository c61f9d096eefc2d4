"""A host and a guest room wired back to back, the way two daemons would be, with fake clocks.

`now` is the wall clock both sides read (it dates events); `mono` is the host's monotonic clock (it times
deadlines). They start far apart so that a test mixing them up fails."""

from __future__ import annotations

from clawroomd.core.envelope import SignedEvent, seal
from clawroomd.core.events import (
    Body,
    CloseAccepted,
    CloseProposed,
    ConsultStarted,
    ErrorEvent,
    FieldSpec,
    Header,
    Joined,
    Message,
    Move,
    RoomCreated,
)
from clawroomd.core.identity import Identity
from clawroomd.core.room import Appended, GuestRoom, HostRoom
from clawroomd.core.rules import outcome_digest

HOST = Identity.from_seed(bytes(range(32)))
GUEST = Identity.from_seed(bytes(range(32, 64)))
MALLORY = Identity.from_seed(bytes(range(64, 96)))
ROOM_ID = "cr_00112233445566778899"
FIELDS = ("amount_format", "hash_algorithm")


def spec(**kw: object) -> RoomCreated:
    args: dict[str, object] = {
        "topic": "Q2 API contract",
        "goal": "Agree on Payments v3",
        "fields": tuple(FieldSpec(name=f) for f in FIELDS),
        "max_turns": 6,
    }
    args.update(kw)
    return RoomCreated(**args)  # type: ignore[arg-type]


class Pair:
    def __init__(self, **spec_kw: object) -> None:
        self.now = 1_000_000
        self.mono = 70_000
        self.n = 0
        self.host = HostRoom.create(HOST, room_id=ROOM_ID, spec=spec(**spec_kw), now_ms=self.now, mono_ms=self.mono)
        self.guest = GuestRoom(GUEST, room_id=ROOM_ID, host_key=HOST.public_key)
        self.deliver(self.host.log)

    def sid(self) -> str:
        self.n += 1
        return f"s{self.n}"

    def deliver(self, events: tuple[SignedEvent, ...] | list[SignedEvent]) -> None:
        for e in events:
            self.guest.receive(e.envelope, now_ms=self.now)

    def advance(self, ms: int) -> None:
        self.now += ms
        self.mono += ms

    def host_send(self, body: Body) -> Appended:
        self.advance(100)
        sub = self.host.send(body, sid=self.sid(), now_ms=self.now, mono_ms=self.mono)
        self.deliver(sub.events)
        return sub

    def guest_send(self, body: Body) -> Appended:
        self.advance(100)
        prepared = self.guest.prepare(body, sid=self.sid(), now_ms=self.now)
        sub = self.host.receive(
            prepared.events[0].envelope, now_ms=self.now, mono_ms=self.mono, from_key=GUEST.public_key
        )
        self.deliver(sub.events)
        return sub

    def tick(self) -> Appended:
        """The host applies its deadlines as of its clocks; the guest receives what that appended."""
        sub = self.host.tick(now_ms=self.now, mono_ms=self.mono)
        self.deliver(sub.events)
        return sub

    def send(self, role: str, body: Body) -> Appended:
        return self.host_send(body) if role == "host" else self.guest_send(body)

    def join(self) -> Pair:
        self.guest_send(Joined(label="backend-agent"))
        return self

    def propose_close(self, role: str) -> Appended:
        outcome = self.host.state.outcome()
        return self.send(role, CloseProposed(outcome=outcome, digest=outcome_digest(ROOM_ID, outcome)))

    def accept_close(self, role: str) -> Appended:
        pending = self.host.state.pending_close
        assert pending is not None
        return self.send(role, CloseAccepted(digest=pending.digest))

    def agree_all(self) -> Pair:
        """Host proposes every field, guest accepts every one: two turns."""
        self.host_send(
            Message(text="proposal", moves=tuple(Move(op="propose", field=f, value=f"v-{f}") for f in FIELDS))
        )
        self.guest_send(Message(text="agreed", moves=tuple(Move(op="accept", field=f, value=f"v-{f}") for f in FIELDS)))
        return self

    def assert_same(self) -> None:
        assert self.host.head == self.guest.head
        assert [e.envelope for e in self.host.log] == [e.envelope for e in self.guest.log]
        assert self.host.state == self.guest.state


def forge(
    identity: Identity,
    room: HostRoom | GuestRoom,
    body: Body,
    *,
    author: str,
    seq: int | None = None,
    prev: bytes | None = None,
    sid: str = "forged",
    ts: int | None = None,
) -> SignedEvent:
    """An event signed by `identity` claiming `author`, placed at the room's next slot and dated like the
    event before it unless told otherwise."""
    header = Header(
        room=room.room_id,
        seq=room.state.seq + 1 if seq is None else seq,
        prev=room.state.head if prev is None else prev,
        author=author,  # type: ignore[arg-type]
        key=identity.public_key,
        ts=room.state.last_ts if ts is None else ts,
        sid=sid,
    )
    return seal(identity, header, body)


__all__ = ["GUEST", "HOST", "MALLORY", "ROOM_ID", "ConsultStarted", "ErrorEvent", "Pair", "forge", "spec"]
