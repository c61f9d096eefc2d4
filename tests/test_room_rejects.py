"""Everything the room must refuse, on both sides, with its code, leaving the room exactly as it was."""

import copy

import pytest
from roompair import FIELDS, GUEST, HOST, MALLORY, ROOM_ID, Pair, forge, spec

from clawroomd.core import cbor, cose
from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import (
    KINDS,
    ROLES,
    CloseAccepted,
    CloseProposed,
    ConsultEnded,
    ConsultStarted,
    ErrorEvent,
    Joined,
    Message,
    Move,
    Outcome,
    RoomClosed,
)
from clawroomd.core.room import GuestRoom, HostRoom
from clawroomd.core.rules import RoomState
from clawroomd.core.table import PHASES, TRANSITIONS

OUTCOME = Outcome(status="no_agreement", outcomes={}, unresolved=FIELDS)
SAMPLE_BODY = {
    "room_created": spec(),
    "joined": Joined(),
    "message": Message(text="hello"),
    "consult_started": ConsultStarted(),
    "consult_ended": ConsultEnded(),
    "close_proposed": CloseProposed(outcome=OUTCOME, digest=bytes(32)),
    "close_accepted": CloseAccepted(digest=bytes(32)),
    "room_closed": RoomClosed(outcome=Outcome(status="timeout", outcomes={}, unresolved=FIELDS), digest=bytes(32)),
    "error": ErrorEvent(code="cancelled"),
}


def rooms_in(phase: str) -> tuple[HostRoom, GuestRoom]:
    """A host and a guest replica, both resting in `phase`."""
    if phase == "new":
        return (
            HostRoom(HOST, RoomState(room_id=ROOM_ID, host_key=HOST.public_key)),
            GuestRoom(GUEST, room_id=ROOM_ID, host_key=HOST.public_key),
        )
    p = Pair()
    if phase in ("active", "delivering", "closing", "closed"):
        p.join().agree_all()
    if phase in ("delivering", "closing", "closed"):
        p.propose_close("host")
    if phase in ("closing", "closed"):
        p.accept_close("guest")
    envs = [e.envelope for e in p.host.log]
    if phase == "closing":
        envs = envs[:-1]  # replay stops before the host's follow-up room_closed
    host = HostRoom.restore(HOST, ROOM_ID, envs, now_ms=2_000_000, mono_ms=5_000)
    guest = GuestRoom.restore(GUEST, room_id=ROOM_ID, host_key=HOST.public_key, envelopes=envs)
    assert host.state.phase == guest.state.phase == phase
    return host, guest


ILLEGAL = [(r, ph, k) for ph in PHASES for r in ROLES for k in KINDS if (r, ph, k) not in TRANSITIONS]


def test_the_table_leaves_many_combinations_illegal():
    assert len(ILLEGAL) + len(TRANSITIONS) == len(PHASES) * len(ROLES) * len(KINDS)
    assert len(ILLEGAL) > 80


@pytest.mark.parametrize(("role", "phase", "kind"), ILLEGAL)
def test_every_illegal_combination_is_refused_on_both_sides(role, phase, kind):
    host, guest = rooms_in(phase)
    before = (copy.deepcopy(host.state), copy.deepcopy(guest.state), len(host.log), len(guest.log))
    body = SAMPLE_BODY[kind]
    expected = {"room_closed"} if phase == "closed" else {"illegal_event"}
    if role == "host":
        with pytest.raises(LocalProtocolError) as local:
            host.send(body, sid="x", now_ms=2_000_000, mono_ms=5_000)
        with pytest.raises(RemoteProtocolError) as remote:
            guest.receive(forge(HOST, guest, body, author="host").envelope, now_ms=2_000_000)
    else:
        with pytest.raises(LocalProtocolError) as local:
            guest.prepare(body, sid="x", now_ms=2_000_000)
        with pytest.raises(RemoteProtocolError) as remote:
            host.receive(forge(GUEST, host, body, author="guest").envelope, now_ms=2_000_000, mono_ms=5_000)
    assert local.value.code in expected and remote.value.code in expected
    assert (host.state, guest.state, len(host.log), len(guest.log)) == before


def refused_by_host(p: Pair, envelope: bytes, code: str) -> None:
    before = (p.host.state, len(p.host.log))
    with pytest.raises(RemoteProtocolError) as err:
        p.host.receive(envelope, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    assert err.value.code == code, err.value
    assert (p.host.state, len(p.host.log)) == before


def refused_by_guest(p: Pair, envelope: bytes, code: str) -> None:
    before = (p.guest.state, len(p.guest.log))
    with pytest.raises(RemoteProtocolError) as err:
        p.guest.receive(envelope, now_ms=p.now)
    assert err.value.code == code, err.value
    assert (p.guest.state, len(p.guest.log)) == before


def guests_turn() -> Pair:
    p = Pair().join()
    p.host_send(Message(text="your turn", moves=(Move(op="propose", field="amount_format", value="cents"),)))
    return p


def test_forged_author_host_key_claiming_guest():
    p = guests_turn()
    refused_by_host(p, forge(MALLORY, p.host, Message(text="hi"), author="guest").envelope, "wrong_author")


def test_host_cannot_forge_a_guest_event():
    p = guests_turn()
    fake = forge(HOST, p.guest, Message(text="I accept everything"), author="guest")
    refused_by_guest(p, fake.envelope, "wrong_author")


def test_guest_refuses_events_signed_by_someone_else_as_host():
    p = Pair().join()
    refused_by_guest(p, forge(MALLORY, p.guest, Message(text="hi"), author="host").envelope, "wrong_author")


def test_bad_signature():
    p = guests_turn()
    env = bytearray(forge(GUEST, p.host, Message(text="hi"), author="guest").envelope)
    env[-1] ^= 0x01
    refused_by_host(p, bytes(env), "bad_signature")
    env2 = bytearray(forge(HOST, p.guest, Message(text="hi"), author="host").envelope)
    env2[-5] ^= 0x80
    refused_by_guest(p, bytes(env2), "bad_signature")


def test_tampered_payload_breaks_the_signature():
    p = guests_turn()
    good = cose.decode_sign1(forge(GUEST, p.host, Message(text="pay 10"), author="guest").envelope, max_size=10**5)
    payload = good.payload.replace(b"pay 10", b"pay 99")
    import cbor2

    tampered = cbor.encode(cbor2.CBORTag(18, [good.protected_bytes, {}, payload, good.signature]))
    refused_by_host(p, tampered, "bad_signature")


def test_broken_chain():
    p = guests_turn()
    refused_by_host(p, forge(GUEST, p.host, Message(text="hi"), author="guest", prev=bytes(32)).envelope, "bad_chain")


def test_replayed_sequence_number():
    p = guests_turn()
    old = p.host.log[-1].header
    env = forge(GUEST, p.host, Message(text="hi"), author="guest", seq=old.seq, prev=old.prev, sid="new-id").envelope
    refused_by_host(p, env, "bad_sequence")


def test_guest_refuses_a_gap_and_a_fork():
    p = guests_turn()
    gap = forge(HOST, p.guest, Message(text="skip"), author="host", seq=p.guest.state.seq + 2)
    refused_by_guest(p, gap.envelope, "bad_sequence")
    fork = forge(HOST, p.guest, Message(text="rewrite"), author="host", seq=2, prev=p.guest.log[1].hash)
    refused_by_guest(p, fork.envelope, "bad_chain")
    # an exact replay of an event it already holds is harmless
    assert p.guest.receive(p.guest.log[2].envelope, now_ms=p.now) is None


def test_out_of_turn():
    p = Pair().join()  # host moves first
    with pytest.raises(LocalProtocolError) as err:
        p.guest.prepare(Message(text="me first"), sid="x", now_ms=p.now)
    assert err.value.code == "not_your_turn"
    refused_by_host(p, forge(GUEST, p.host, Message(text="me first"), author="guest").envelope, "not_your_turn")
    p.host_send(Message(text="ok"))
    with pytest.raises(LocalProtocolError) as err:
        p.host.send(Message(text="again"), sid="y", now_ms=p.now, mono_ms=p.mono)
    assert err.value.code == "not_your_turn"
    refused_by_guest(p, forge(HOST, p.guest, Message(text="again"), author="host").envelope, "not_your_turn")


def test_over_the_turn_limit():
    p = Pair(max_turns=2).join().agree_all()  # limit used, everything agreed, so the room stays open
    with pytest.raises(LocalProtocolError) as err:
        p.host.send(Message(text="one more"), sid="z", now_ms=p.now, mono_ms=p.mono)
    assert err.value.code == "turn_limit"
    refused_by_guest(p, forge(HOST, p.guest, Message(text="one more"), author="host").envelope, "turn_limit")


def test_unknown_field():
    p = guests_turn()
    body = Message(text="x", moves=(Move(op="propose", field="color", value="red"),))
    refused_by_host(p, forge(GUEST, p.host, body, author="guest").envelope, "unknown_field")


def test_accept_of_a_value_nobody_proposed():
    p = guests_turn()  # host proposed amount_format = cents
    wrong_value = Message(text="x", moves=(Move(op="accept", field="amount_format", value="dollars"),))
    refused_by_host(p, forge(GUEST, p.host, wrong_value, author="guest").envelope, "no_such_proposal")
    never = Message(text="x", moves=(Move(op="accept", field="hash_algorithm", value="sha-256"),))
    refused_by_host(p, forge(GUEST, p.host, never, author="guest").envelope, "no_such_proposal")
    own = Message(text="x", moves=(Move(op="reject", field="hash_algorithm"),))
    refused_by_host(p, forge(GUEST, p.host, own, author="guest").envelope, "no_such_proposal")


def test_a_move_list_is_all_or_nothing():
    p = guests_turn()
    body = Message(
        text="x",
        moves=(Move(op="accept", field="amount_format", value="cents"), Move(op="propose", field="nope", value="1")),
    )
    refused_by_host(p, forge(GUEST, p.host, body, author="guest").envelope, "unknown_field")
    assert p.host.state.agreed == {}


def test_close_with_a_false_outcome():
    p = guests_turn()
    lie = Outcome(status="agreement_reached", outcomes={f: "x" for f in FIELDS}, unresolved=())
    from clawroomd.core.rules import outcome_digest

    body = CloseProposed(outcome=lie, digest=outcome_digest(ROOM_ID, lie))
    refused_by_host(p, forge(GUEST, p.host, body, author="guest").envelope, "outcome_mismatch")
    honest = p.host.state.outcome()
    bad_digest = CloseProposed(outcome=honest, digest=bytes(32))
    refused_by_host(p, forge(GUEST, p.host, bad_digest, author="guest", sid="b").envelope, "outcome_mismatch")


def test_cannot_accept_own_close_or_a_different_digest():
    p = Pair().join()
    p.host_send(Message(text="x"))
    p.propose_close("guest")
    refused_by_host(
        p,
        forge(GUEST, p.host, CloseAccepted(digest=p.host.state.pending_close.digest), author="guest").envelope,
        "illegal_event",
    )
    with pytest.raises(LocalProtocolError) as err:
        p.host.send(CloseAccepted(digest=bytes(32)), sid="q", now_ms=p.now, mono_ms=p.mono)
    assert err.value.code == "outcome_mismatch"


def test_host_cannot_claim_agreement_alone():
    p = Pair().join().agree_all()
    outcome = p.host.state.outcome()
    from clawroomd.core.rules import outcome_digest

    body = RoomClosed(outcome=outcome, digest=outcome_digest(ROOM_ID, outcome))
    refused_by_guest(p, forge(HOST, p.guest, body, author="host").envelope, "outcome_mismatch")


def test_no_moves_while_consulting():
    p = guests_turn()
    p.guest_send(ConsultStarted())
    with pytest.raises(LocalProtocolError) as err:
        p.guest.prepare(Message(text="x"), sid="c", now_ms=p.now)
    assert err.value.code == "consulting"
    with pytest.raises(LocalProtocolError) as err:
        p.guest.prepare(ConsultStarted(), sid="c2", now_ms=p.now)
    assert err.value.code == "consulting"


def test_garbage_is_malformed_not_a_crash():
    p = guests_turn()
    for data in (b"", b"\x00", b"\xd2\x84", cbor.encode([1, 2, 3]), b"\xff" * 100):
        with pytest.raises(RemoteProtocolError) as err:
            p.host.receive(data, now_ms=p.now, mono_ms=p.mono)
        assert err.value.code in ("malformed", "bad_signature")


def test_oversized_event():
    from clawroomd.core.envelope import MAX_EVENT_BYTES

    p = guests_turn()
    with pytest.raises(RemoteProtocolError) as err:
        p.host.receive(b"\x00" * (MAX_EVENT_BYTES + 1), now_ms=p.now, mono_ms=p.mono)
    assert err.value.code == "too_large"
    moves = tuple(Move(op="propose", field=f"f{i}", value="x" * 2000) for i in range(30))
    with pytest.raises(LocalProtocolError) as err2:
        big = Message(text="y" * 8000, moves=moves)
        forge(GUEST, p.host, big, author="guest")
    assert err2.value.code == "too_large"
