"""A host object and a guest object exchanging bytes through short rooms, one per result status."""

import pytest
from roompair import FIELDS, Pair

from clawroomd.core.events import ConsultEnded, ConsultStarted, ErrorEvent, Message, Move


def closed_status(p: Pair) -> str:
    p.assert_same()
    assert p.host.state.phase == "closed"
    result = p.host.state.result
    assert result is not None
    return result.outcome.status


def test_agreement_reached_needs_both_signatures():
    p = Pair().join().agree_all()
    sub = p.propose_close("host")
    assert p.host.state.phase == "delivering"
    assert [e.kind for e in sub.events] == ["close_proposed"]
    sub = p.accept_close("guest")
    assert [e.kind for e in sub.events] == ["close_accepted", "room_closed"]
    assert closed_status(p) == "agreement_reached"
    assert dict(p.host.state.result.outcome.outcomes) == {f: f"v-{f}" for f in FIELDS}
    assert p.host.state.result.outcome.unresolved == ()
    # the proposal and the countersignature are by different keys over the same digest
    proposal, accept, closed = p.host.log[-3:]
    assert proposal.header.author == "host" and accept.header.author == "guest"
    assert proposal.body.digest == accept.body.digest == closed.body.digest


def test_partial_agreement():
    p = Pair().join()
    p.host_send(Message(text="x", moves=(Move(op="propose", field="amount_format", value="minor units"),)))
    p.guest_send(Message(text="y", moves=(Move(op="accept", field="amount_format", value="minor units"),)))
    p.propose_close("guest")
    p.accept_close("host")
    assert closed_status(p) == "partial_agreement"
    assert p.host.state.result.outcome.unresolved == ("hash_algorithm",)


def test_no_agreement():
    p = Pair().join()
    p.host_send(Message(text="nothing to offer"))
    p.propose_close("guest")
    p.accept_close("host")
    assert closed_status(p) == "no_agreement"


def test_turn_limit_reached_is_appended_by_the_host_itself():
    p = Pair(max_turns=2).join()
    p.host_send(Message(text="a", moves=(Move(op="propose", field="amount_format", value="cents"),)))
    sub = p.guest_send(Message(text="b", moves=(Move(op="reject", field="amount_format"),)))
    assert [e.kind for e in sub.events] == ["message", "room_closed"]
    assert closed_status(p) == "turn_limit_reached"


def test_all_agreed_on_the_last_turn_still_allows_the_signed_close():
    p = Pair(max_turns=2).join().agree_all()
    assert p.host.state.phase == "active" and p.host.state.turn is None
    p.propose_close("guest")
    p.accept_close("host")
    assert closed_status(p) == "agreement_reached"


def test_timeout_from_turn_deadline():
    p = Pair(turn_timeout_ms=5_000).join()
    p.host_send(Message(text="your move"))
    due = p.host.next_deadline()
    assert due is not None and "guest" in due[1]
    assert p.host.tick(now_ms=p.now, mono_ms=due[0] - 1).events == ()
    sub = p.host.tick(now_ms=p.now, mono_ms=due[0])
    p.deliver(sub.events)
    assert closed_status(p) == "timeout"


def test_room_deadline_applies_before_anyone_joins():
    p = Pair(deadline_ms=1_060_000)
    p.advance(59_999)
    assert p.tick().events == ()
    p.advance(1)
    p.tick()
    assert closed_status(p) == "timeout"


def test_consultation_pauses_the_turn_clock_and_has_its_own_deadline():
    p = Pair(turn_timeout_ms=5_000, answer_timeout_ms=60_000).join()
    p.host_send(Message(text="your move"))
    p.guest_send(ConsultStarted())
    due = p.host.next_deadline()
    assert due is not None and "owner" in due[1]
    p.guest_send(ConsultEnded())
    due = p.host.next_deadline()
    assert due is not None and "turn deadline" in due[1]


@pytest.mark.parametrize("who", ["host", "guest"])
def test_cancelled_by_either_side(who):
    p = Pair().join()
    sub = p.send(who, ErrorEvent(code="cancelled", message="owner changed plans"))
    assert [e.kind for e in sub.events] == ["error", "room_closed"]
    assert closed_status(p) == "cancelled"


def test_error_event_closes_with_error():
    p = Pair().join()
    p.guest_send(ErrorEvent(code="agent_crashed"))
    assert closed_status(p) == "error"
    assert "agent_crashed" in p.host.state.result.reason


def test_a_message_declines_a_pending_close():
    p = Pair().join()
    p.host_send(Message(text="hi"))
    p.propose_close("host")
    assert p.host.state.phase == "delivering"
    p.guest_send(Message(text="not yet", moves=(Move(op="propose", field="hash_algorithm", value="sha-256"),)))
    assert p.host.state.phase == "active" and p.host.state.pending_close is None
    p.assert_same()


def test_proposing_again_reopens_an_agreed_field():
    p = Pair().join().agree_all()
    assert p.host.state.all_agreed
    p.host_send(Message(text="on second thought", moves=(Move(op="propose", field="hash_algorithm", value="blake2"),)))
    assert "hash_algorithm" not in p.host.state.agreed
    p.assert_same()


def test_retried_submit_returns_the_original_outcome():
    p = Pair().join()
    p.host_send(Message(text="first"))
    p.now += 100
    envelope = p.guest.prepare(Message(text="x"), sid="retry-me", now_ms=p.now).events[0].envelope
    first = p.host.receive(envelope, now_ms=p.now, mono_ms=p.mono)
    p.deliver(first.events)
    again = p.host.receive(envelope, now_ms=p.now + 5, mono_ms=p.mono + 5)
    assert again.duplicate and again.events == (first.events[0],)
    # the same id signed again later (say after a crash lost our copy) still gets the original answer
    p.host_send(Message(text="second"))
    resigned = p.guest.prepare(Message(text="x"), sid="retry-me", now_ms=p.now)
    assert resigned.duplicate and resigned.events == (first.events[0],)
    assert p.host.state.turns == 3
    p.assert_same()


def test_host_local_retry_is_idempotent():
    p = Pair().join()
    a = p.host.send(Message(text="once"), sid="m-1", now_ms=p.now + 1, mono_ms=p.mono + 1)
    b = p.host.send(Message(text="once"), sid="m-1", now_ms=p.now + 2, mono_ms=p.mono + 2)
    assert b.duplicate and b.events == a.events
    assert p.host.state.turns == 1


def test_restore_from_envelopes_gives_the_same_state():
    from roompair import GUEST, HOST, ROOM_ID

    from clawroomd.core.room import GuestRoom, HostRoom

    p = Pair().join().agree_all()
    envs = [e.envelope for e in p.host.log]
    h2 = HostRoom.restore(HOST, ROOM_ID, envs, now_ms=p.now, mono_ms=p.mono)
    g2 = GuestRoom.restore(GUEST, room_id=ROOM_ID, host_key=HOST.public_key, envelopes=envs)
    assert h2.state == p.host.state == g2.state
