#!/usr/bin/env python3
"""Write protocol/vectors/short-room.json: fixed keys and clocks -> the exact bytes of a short room.

Ed25519 and deterministic CBOR make every byte reproducible; `--check` exits 1 if the file differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clawroomd.core.events import CloseAccepted, CloseProposed, FieldSpec, Joined, Message, Move, RoomCreated
from clawroomd.core.identity import Identity
from clawroomd.core.room import GuestRoom, HostRoom
from clawroomd.core.rules import outcome_digest

OUT = Path(__file__).resolve().parents[1] / "protocol" / "vectors" / "short-room.json"
HOST_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
GUEST_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
ROOM = "cr_8f2a9c3d00000001"


def build() -> dict[str, object]:
    host_id, guest_id = Identity.from_seed(HOST_SEED), Identity.from_seed(GUEST_SEED)
    spec = RoomCreated(
        topic="Negotiate API Contract for Payments v3",
        goal="Agree on Payments v3 spec",
        fields=(
            FieldSpec(name="amount_format", description="how amounts are written"),
            FieldSpec(name="hash_algorithm"),
        ),
        max_turns=20,
        label="stripe-agent",
    )
    t = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    host = HostRoom.create(host_id, room_id=ROOM, spec=spec, now_ms=t, mono_ms=0, sid="create")
    guest = GuestRoom(guest_id, room_id=ROOM, host_key=host_id.public_key)
    guest.receive(host.log[0].envelope, now_ms=t)

    def from_guest(body: object, sid: str, ts: int) -> None:
        env = guest.prepare(body, sid=sid, now_ms=ts).events[0].envelope  # type: ignore[arg-type]
        for e in host.receive(env, now_ms=ts, mono_ms=ts - t).events:
            guest.receive(e.envelope, now_ms=ts)

    def from_host(body: object, sid: str, ts: int) -> None:
        for e in host.send(body, sid=sid, now_ms=ts, mono_ms=ts - t).events:  # type: ignore[arg-type]
            guest.receive(e.envelope, now_ms=ts)

    from_guest(Joined(label="backend-agent"), "join", t + 124)
    from_host(
        Message(
            text="Proposing amounts in minor units and SHA-256 over raw JSON.",
            moves=(
                Move(op="propose", field="amount_format", value="minor units"),
                Move(op="propose", field="hash_algorithm", value="SHA-256 over raw JSON"),
            ),
        ),
        "m1",
        t + 2341,
    )
    from_guest(
        Message(
            text="Both accepted.",
            moves=(
                Move(op="accept", field="amount_format", value="minor units"),
                Move(op="accept", field="hash_algorithm", value="SHA-256 over raw JSON"),
            ),
        ),
        "m2",
        t + 4892,
    )
    outcome = host.state.outcome()
    from_host(CloseProposed(outcome=outcome, digest=outcome_digest(ROOM, outcome)), "close", t + 9823)
    from_guest(CloseAccepted(digest=outcome_digest(ROOM, outcome)), "countersign", t + 9847)
    assert host.head == guest.head and host.state.phase == "closed"
    return {
        "description": "A complete room: create, join, two messages agreeing both fields, signed close. "
        "Keys are RFC 8032 test keys (host: test 1, guest: test 2).",
        "host_seed": HOST_SEED.hex(),
        "guest_seed": GUEST_SEED.hex(),
        "host_peer_id": host_id.peer_id,
        "guest_peer_id": guest_id.peer_id,
        "room": ROOM,
        "events": [
            {"kind": e.kind, "seq": e.header.seq, "envelope": e.envelope.hex(), "hash": e.hash.hex()} for e in host.log
        ],
        "head": host.head.hex(),
        "outcome_digest": outcome_digest(ROOM, outcome).hex(),
    }


def main(argv: list[str]) -> int:
    text = json.dumps(build(), indent=1) + "\n"
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/gen_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
