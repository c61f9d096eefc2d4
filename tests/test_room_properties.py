"""Property tests: random bytes only ever raise RemoteProtocolError; random play keeps both sides identical."""

import contextlib
import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roompair import FIELDS, GUEST, Pair

from clawroomd.core import cbor
from clawroomd.core.envelope import open_envelope
from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import ConsultEnded, ConsultStarted, ErrorEvent, Message, Move

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_into_the_host_raise_only_remote_errors(data):
    p = Pair().join()
    before = copy.deepcopy(p.host.state)
    with contextlib.suppress(RemoteProtocolError):
        p.host.receive(data, now_ms=p.now, mono_ms=p.mono)
    assert p.host.state == before


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_into_the_guest_raise_only_remote_errors(data):
    p = Pair().join()
    with contextlib.suppress(RemoteProtocolError):
        p.guest.receive(data, now_ms=p.now)


@SETTINGS
@given(st.binary(max_size=256).map(lambda b: b"\xd2\x84" + b))
def test_cose_shaped_garbage_is_refused_cleanly(data):
    with contextlib.suppress(LocalProtocolError):
        open_envelope(data)


_json_leaf = st.one_of(
    st.integers(-(2**64), 2**64 - 1), st.text(max_size=20), st.binary(max_size=20), st.booleans(), st.none()
)
_values = st.recursive(
    _json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(_values)
def test_cbor_round_trip_is_exact(value):
    data = cbor.encode(value)
    assert cbor.encode(cbor.decode(data, max_size=1 << 20)) == data


values = st.sampled_from(["cents", "minor units", "sha-256", "blake2", "30s"])
action = st.one_of(
    st.tuples(st.just("propose"), st.sampled_from(FIELDS), values),
    st.tuples(st.just("accept"), st.sampled_from(FIELDS), values),
    st.tuples(st.just("accept_standing"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("reject"), st.sampled_from(FIELDS), st.none()),
    st.tuples(
        st.sampled_from(["say", "consult", "answer", "close", "countersign", "cancel", "tick"]), st.none(), st.none()
    ),
)


@SETTINGS
@given(st.lists(action, max_size=40), st.integers(2, 12))
def test_random_play_keeps_host_and_guest_identical(actions, max_turns):
    p = Pair(max_turns=max_turns, turn_timeout_ms=50_000).join()
    for name, fld, value in actions:
        st_ = p.host.state
        role = st_.turn or ("host" if p.n % 2 else "guest")
        peer = "guest" if role == "host" else "host"
        try:
            if name == "propose":
                p.send(role, Message(text="p", moves=(Move(op="propose", field=fld, value=value),)))
            elif name == "accept":
                p.send(role, Message(text="a", moves=(Move(op="accept", field=fld, value=value),)))
            elif name == "accept_standing":
                standing = st_.proposals.get(fld, {}).get(peer)
                p.send(role, Message(text="a", moves=(Move(op="accept", field=fld, value=standing or "none"),)))
            elif name == "reject":
                p.send(role, Message(text="r", moves=(Move(op="reject", field=fld),)))
            elif name == "say":
                p.send(role, Message(text="just talking"))
            elif name == "consult":
                p.send(role, ConsultStarted())
            elif name == "answer":
                p.send(role, ConsultEnded())
            elif name == "close":
                p.propose_close(role)
            elif name == "countersign":
                pending = st_.pending_close
                p.accept_close(peer if pending is None else ("guest" if pending.proposer == "host" else "host"))
            elif name == "cancel":
                p.send(role, ErrorEvent(code="cancelled"))
            elif name == "tick":
                p.advance(60_000)
                p.tick()
        except (LocalProtocolError, AssertionError):
            assert p.host.state == st_  # a refused step changes nothing
        p.assert_same()
        if p.host.state.phase == "closed":
            assert p.host.state.result is not None
            break
    # whatever happened, the guest's view agrees and every event in the log verifies
    for event in p.host.log:
        open_envelope(event.envelope)
    assert all(e.header.key == GUEST.public_key for e in p.host.log if e.header.author == "guest")
