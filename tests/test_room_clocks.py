"""The clock rule (SPEC §9): deadlines run on the host's own monotonic clock from when it appended each event;
an event's `ts` is its author's claim, refused only when it is out of bounds, and never times anything.

Pure core, explicit clocks: `p.now` is the wall clock (dates events), `p.mono` the host's monotonic clock.
"""

import copy

import pytest
from roompair import GUEST, HOST, ROOM_ID, Pair, forge

from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import MAX_CLOCK_SKEW_MS, Body, ConsultEnded, ConsultStarted, Joined, Message
from clawroomd.core.room import GuestRoom, HostRoom

SKEW = MAX_CLOCK_SKEW_MS
TURN = 30_000


def guest_send_with_clock(p: Pair, body: Body, *, guest_clock_offset: int) -> None:
    """The guest signs with its own (skewed) wall clock; the host receives it at its own times."""
    p.advance(100)
    env = p.guest.prepare(body, sid=p.sid(), now_ms=p.now + guest_clock_offset).events[0].envelope
    p.deliver(p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key).events)


def test_a_slow_guest_clock_does_not_close_the_room_at_once():
    # The case: guest clock 45 s slow, turn timeout 30 s. The host's turn starts when it received the
    # guest's message, not at the (45 s earlier) time the guest wrote on it.
    p = Pair(turn_timeout_ms=TURN, first="guest")
    guest_send_with_clock(p, Joined(), guest_clock_offset=-45_000)
    guest_send_with_clock(p, Message(text="my move"), guest_clock_offset=-45_000)
    received_at = p.mono
    assert p.host.next_deadline() == (received_at + TURN, "the host did not move within the turn deadline")
    assert p.tick().events == ()
    assert p.host.state.phase == "active"
    p.advance(TURN - 1)
    assert p.tick().events == ()
    p.advance(1)
    assert [e.kind for e in p.tick().events] == ["room_closed"]
    p.assert_same()


@pytest.mark.parametrize("offset", [-4 * 60_000, 0, 4 * 60_000])
def test_the_guest_turn_deadline_is_the_same_whatever_the_guest_clock(offset):
    p = Pair(turn_timeout_ms=TURN).join()
    p.host_send(Message(text="your move"))
    sent_at = p.mono
    assert p.host.next_deadline() == (sent_at + TURN, "the guest did not move within the turn deadline")
    p.advance(TURN - 500)
    guest_send_with_clock(p, Message(text="just in time"), guest_clock_offset=offset)
    assert p.host.state.turns == 2  # the guest's clock, whichever way it is off, changed nothing
    assert p.host.next_deadline() == (p.mono + TURN, "the host did not move within the turn deadline")


def test_consult_answer_timeout_runs_on_the_host_clock():
    p = Pair(turn_timeout_ms=TURN, answer_timeout_ms=60_000).join()
    p.host_send(Message(text="your move"))
    p.advance(1_000)
    # dated as far ahead as the bound allows: still timed from when the host received it
    env = forge(GUEST, p.host, ConsultStarted(), author="guest", ts=p.now + SKEW).envelope
    p.deliver(p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key).events)
    assert p.host.next_deadline() == (p.mono + 60_000, "the guest's owner did not answer in time")
    p.advance(59_999)
    assert p.tick().events == ()
    p.advance(1)
    closed = p.tick().events
    assert [e.kind for e in closed] == ["room_closed"] and closed[0].body.outcome.status == "timeout"
    p.assert_same()


@pytest.mark.parametrize("kind", [Message(text="x"), ConsultStarted()], ids=["message", "consult_started"])
def test_a_timestamp_of_2_53_is_refused_and_changes_nothing(kind):
    p = Pair(turn_timeout_ms=TURN, answer_timeout_ms=60_000).join()
    p.host_send(Message(text="your move"))
    before = (copy.deepcopy(p.host.state), p.host.timers, p.host.next_deadline())
    env = forge(GUEST, p.host, kind, author="guest", ts=2**53).envelope
    with pytest.raises(RemoteProtocolError) as err:
        p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    assert err.value.code == "bad_timestamp" and "ahead of our clock" in err.value.message
    assert (p.host.state, p.host.timers, p.host.next_deadline()) == before
    # and the deadline it would have dodged still fires on the host's clock
    p.advance(TURN)
    assert p.tick().events[0].body.outcome.status == "timeout"


def test_the_guest_refuses_a_host_event_dated_far_ahead_of_its_clock():
    p = Pair().join()
    late = forge(HOST, p.guest, Message(text="from the future"), author="host", ts=p.now + SKEW + 1)
    before = copy.deepcopy(p.guest.state)
    with pytest.raises(RemoteProtocolError) as err:
        p.guest.receive(late.envelope, now_ms=p.now)
    assert err.value.code == "bad_timestamp"
    assert p.guest.state == before
    ok = forge(HOST, p.guest, Message(text="a little ahead"), author="host", ts=p.now + SKEW)
    assert p.guest.receive(ok.envelope, now_ms=p.now) is not None


def test_an_event_dated_too_far_before_the_previous_one_is_refused_on_both_sides():
    p = Pair().join()
    p.host_send(Message(text="your move"))
    last = p.host.state.last_ts
    too_old = forge(GUEST, p.host, Message(text="x"), author="guest", ts=last - SKEW - 1).envelope
    with pytest.raises(RemoteProtocolError) as err:
        p.host.receive(too_old, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    assert err.value.code == "bad_timestamp" and "before the event it follows" in err.value.message
    p2 = Pair().join()
    old_host = forge(HOST, p2.guest, Message(text="x"), author="host", ts=p2.guest.state.last_ts - SKEW - 1)
    with pytest.raises(RemoteProtocolError) as err:
        p2.guest.receive(old_host.envelope, now_ms=p2.now)
    assert err.value.code == "bad_timestamp"
    at_bound = forge(GUEST, p.host, Message(text="x"), author="guest", ts=last - SKEW).envelope
    assert p.host.receive(at_bound, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key).events


def test_the_lower_bound_holds_on_replay_from_a_store():
    """The rule is part of the transition, so a transcript that breaks it does not even restore."""
    p = Pair().join()
    bad = forge(HOST, p.host, Message(text="x"), author="host", ts=p.host.state.last_ts - SKEW - 1)
    envs = [e.envelope for e in p.host.log] + [bad.envelope]
    with pytest.raises(LocalProtocolError) as err:
        HostRoom.restore(HOST, ROOM_ID, envs, now_ms=p.now, mono_ms=p.mono)
    assert err.value.code == "bad_timestamp"
    with pytest.raises(LocalProtocolError):
        GuestRoom.restore(GUEST, room_id=ROOM_ID, host_key=HOST.public_key, envelopes=envs)


def test_a_queued_submission_resent_an_hour_later_is_accepted():
    """A guest's outbox envelope goes out after an outage with its old ts: fine, its prev is as old."""
    p = Pair(turn_timeout_ms=None).join()
    p.host_send(Message(text="your move"))
    env = p.guest.prepare(Message(text="signed before the outage"), sid="queued", now_ms=p.now).events[0].envelope
    p.advance(3_600_000)
    sub = p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    p.deliver(sub.events)
    assert sub.events[0].header.ts == p.now - 3_600_000
    p.host_send(Message(text="welcome back"))  # dated an hour later than the event before it: no upper bound
    p.assert_same()


def test_our_clock_stepping_back_never_blocks_our_own_events():
    """An NTP step back past the bound: the host still sends and still closes on a deadline."""
    p = Pair(turn_timeout_ms=TURN).join()
    p.host_send(Message(text="before the step"))
    last = p.host.state.last_ts
    p.now -= 10 * 60_000  # the wall clock jumps back ten minutes; the monotonic one does not
    p.advance(TURN)
    closed = p.tick().events
    assert closed[0].body.outcome.status == "timeout"
    assert closed[0].header.ts == last - SKEW  # dated as early as the rule allows, not refused
    p.assert_same()


def test_a_guest_clock_far_behind_is_clamped_not_refused_locally():
    p = Pair().join()
    p.host_send(Message(text="your move"))
    prepared = p.guest.prepare(Message(text="x"), sid="slow", now_ms=p.now - 3_600_000).events[0]
    assert prepared.header.ts == p.guest.state.last_ts - SKEW


def test_restore_starts_the_running_timers_at_restore_time():
    p = Pair(turn_timeout_ms=TURN, answer_timeout_ms=60_000, deadline_ms=1_000_000 + 3_600_000).join()
    p.host_send(Message(text="your move"))
    p.guest_send(ConsultStarted())
    envs = [e.envelope for e in p.host.log]
    # the daemon comes back two hours of wall time later, on a monotonic clock that started afresh
    now, mono = p.now + 7_200_000, 10
    host = HostRoom.restore(HOST, ROOM_ID, envs, now_ms=now, mono_ms=mono)
    assert host.timers.consulting_since == {"guest": mono}
    assert host.next_deadline() == (mono + 1_000_000 + 3_600_000 - now, "the room's deadline passed")
    # without the room deadline: the consultation's answer timer runs from restore time
    q = Pair(turn_timeout_ms=TURN, answer_timeout_ms=60_000).join()
    q.host_send(Message(text="your move"))
    q.guest_send(ConsultStarted())
    host = HostRoom.restore(HOST, ROOM_ID, [e.envelope for e in q.host.log], now_ms=q.now + 9_999_999, mono_ms=mono)
    assert host.next_deadline() == (mono + 60_000, "the guest's owner did not answer in time")
    q.guest_send(ConsultEnded())
    host2 = HostRoom.restore(HOST, ROOM_ID, [e.envelope for e in q.host.log], now_ms=q.now, mono_ms=mono)
    assert host2.next_deadline() == (mono + TURN, "the guest did not move within the turn deadline")


def test_the_room_deadline_is_read_against_the_host_wall_clock_once():
    p = Pair(deadline_ms=1_000_000 + 60_000)  # created at wall 1_000_000
    created_mono = p.mono
    assert p.host.next_deadline() == (created_mono + 60_000, "the room's deadline passed")
    p.now += 3_600_000  # a later wall-clock jump does not move it: it lives on the monotonic timeline now
    p.join()
    assert p.host.next_deadline() is not None and p.host.next_deadline()[0] == created_mono + 60_000


def test_rolling_back_an_unsaved_timeout_close_keeps_the_deadline():
    # The daemon could not store the timeout close (disk full): after the rollback the deadline must still
    # be due, so the next tick closes the room again, instead of the room losing its timers with the close.
    p = Pair(turn_timeout_ms=TURN).join()
    p.host_send(Message(text="your move"))
    due = p.host.next_deadline()
    assert due is not None
    p.advance(TURN)
    before = p.host.state.seq
    assert [e.kind for e in p.tick().events] == ["room_closed"]
    assert p.host.next_deadline() is None
    dropped = p.host.rollback(before)
    assert [e.kind for e in dropped] == ["room_closed"]
    assert p.host.state.phase == "active"
    assert p.host.next_deadline() == due
    assert [e.kind for e in p.tick().events] == ["room_closed"]
