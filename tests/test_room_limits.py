"""Events that use no turn are bounded (SPEC §11): consultations per side per turn, and events per room, with
the budget kept so that the messages left and the close always fit."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roompair import FIELDS, GUEST, HOST, Pair, forge

from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import MAX_CONSULTS_PER_TURN, ConsultEnded, ConsultStarted, Message, Move
from clawroomd.core.rules import max_events


def refused_both_ways(p: Pair, role: str, code: str) -> None:
    """`role` may not start a consultation now: its own room says so (Local), the receiver too (Remote)."""
    before = (copy.deepcopy(p.host.state), len(p.host.log), copy.deepcopy(p.guest.state), len(p.guest.log))
    if role == "guest":
        with pytest.raises(LocalProtocolError) as local:
            p.guest.prepare(ConsultStarted(), sid="flood", now_ms=p.now)
        env = forge(GUEST, p.host, ConsultStarted(), author="guest", sid="flood").envelope
        with pytest.raises(RemoteProtocolError) as remote:
            p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    else:
        with pytest.raises(LocalProtocolError) as local:
            p.host.send(ConsultStarted(), sid="flood", now_ms=p.now, mono_ms=p.mono)
        env = forge(HOST, p.guest, ConsultStarted(), author="host", sid="flood").envelope
        with pytest.raises(RemoteProtocolError) as remote:
            p.guest.receive(env, now_ms=p.now)
    assert local.value.code == remote.value.code == code
    assert (p.host.state, len(p.host.log), p.guest.state, len(p.guest.log)) == before


def consult_pair(p: Pair, role: str) -> None:
    p.send(role, ConsultStarted())
    p.send(role, ConsultEnded())


@pytest.mark.parametrize("role", ["host", "guest"])
def test_consultations_per_side_per_turn_are_capped(role):
    p = Pair(max_turns=20).join()
    for _ in range(MAX_CONSULTS_PER_TURN):
        consult_pair(p, role)
    refused_both_ways(p, role, "consult_limit")
    other = "guest" if role == "host" else "host"
    consult_pair(p, other)  # the other side's count is its own
    p.host_send(Message(text="a turn passes"))
    consult_pair(p, role)  # and a message starts a fresh count
    p.assert_same()


def test_a_flood_stops_at_the_room_cap_and_the_room_still_closes_with_agreement():
    """Both sides consult as often as they may in every turn: the room never exceeds its cap, consultations
    are refused with event_limit once the budget is spent, and the messages and the signed close still fit."""
    max_turns = 6
    p = Pair(max_turns=max_turns).join()
    event_limit_hits = 0
    while p.host.state.turns < max_turns:
        for role in ("host", "guest"):
            while True:
                try:
                    p.send(role, ConsultStarted())
                except LocalProtocolError as err:
                    assert err.code in ("consult_limit", "event_limit")
                    if err.code == "event_limit":
                        event_limit_hits += 1
                        refused_both_ways(p, role, "event_limit")
                    break
                p.send(role, ConsultEnded())
        mover = p.host.state.turn
        left = max_turns - p.host.state.turns
        if left == 2:
            moves = tuple(Move(op="propose", field=f, value="v") for f in FIELDS)
        elif left == 1:
            moves = tuple(Move(op="accept", field=f, value="v") for f in FIELDS)
        else:
            moves = ()
        p.send(mover, Message(text="turn", moves=moves))
    assert event_limit_hits > 0
    assert p.host.state.all_agreed
    p.propose_close("host")
    p.accept_close("guest")
    assert p.host.state.result is not None and p.host.state.result.outcome.status == "agreement_reached"
    assert len(p.host.log) <= max_events(max_turns)
    p.assert_same()


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
steps = st.lists(st.sampled_from(["consult_host", "consult_guest", "end", "say", "close", "decline"]), max_size=150)


@SETTINGS
@given(steps, st.integers(1, 4))
def test_no_play_exceeds_the_room_cap(actions, max_turns):
    p = Pair(max_turns=max_turns).join()
    for action in actions:
        st_ = p.host.state
        if st_.phase == "closed":
            break
        try:
            if action.startswith("consult_"):
                p.send(action.removeprefix("consult_"), ConsultStarted())
            elif action == "end" and st_.consulting:
                p.send(sorted(st_.consulting)[0], ConsultEnded())
            elif action == "say" and st_.turn is not None:
                p.send(st_.turn, Message(text="x"))
            elif action == "close":
                p.propose_close(st_.turn or "host")
            elif action == "decline" and st_.pending_close is not None and st_.turn is not None:
                p.send(st_.turn, Message(text="not yet"))
        except LocalProtocolError:
            assert p.host.state == st_
        assert len(p.host.log) <= max_events(max_turns)
    p.assert_same()
