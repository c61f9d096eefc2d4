"""Room-state facts of the core: who is awaited (`RoomState.awaiting`, `your_turn`) and the participant
lifecycle (`core.lifecycle`), on real transcripts built by a host and a guest room back to back."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from roompair import FIELDS, GUEST, HOST, ROOM_ID, Pair

from clawroomd.core.events import ConsultEnded, ConsultStarted, ErrorEvent, Message, Move
from clawroomd.core.lifecycle import LIFECYCLES, lifecycle
from clawroomd.core.room import GuestRoom
from clawroomd.core.rules import RoomState

SPEC = Path(__file__).resolve().parent.parent / "protocol" / "SPEC.md"


def both(p: Pair) -> tuple[str, str]:
    return lifecycle(p.host.state, "host"), lifecycle(p.guest.state, "guest")


def test_before_the_join_the_host_is_invited_and_the_guest_joining() -> None:
    fresh = GuestRoom(GUEST, room_id=ROOM_ID, host_key=HOST.public_key).state
    assert fresh.phase == "new" and lifecycle(fresh, "guest") == "joining"
    p = Pair()
    assert p.guest.state.phase == "invited" and both(p) == ("invited", "joining")
    assert p.host.state.awaiting == frozenset() and not p.host.state.your_turn("host")


def test_active_awaits_whose_turn_it_is_and_not_a_consulting_side() -> None:
    p = Pair().join()
    st = p.host.state
    assert both(p) == ("active", "active")
    assert st.awaiting == {"host"} and st.your_turn("host") and not st.your_turn("guest")
    p.host_send(ConsultStarted())
    st = p.host.state
    assert st.awaiting == {"host"} and not st.your_turn("host")  # still expected, but waiting on its owner
    p.host_send(ConsultEnded())
    p.host_send(Message(text="hi", moves=(Move(op="propose", field=FIELDS[0], value="x"),)))
    assert p.guest.state.awaiting == {"guest"} and p.guest.state.your_turn("guest")


def test_a_close_proposal_awaits_the_other_side_and_shows_delivering() -> None:
    p = Pair().join().agree_all()
    p.propose_close("host")
    assert both(p) == ("delivering", "delivering")
    assert p.host.state.awaiting == {"guest"} and p.guest.state.your_turn("guest")
    closing = replace(p.host.state, phase="closing")
    assert lifecycle(closing, "host") == "delivering" and closing.awaiting == frozenset()
    p.accept_close("guest")
    assert p.host.state.result is not None and p.host.state.result.outcome.status == "agreement_reached"
    assert both(p) == ("closed", "closed") and p.host.state.awaiting == frozenset()


def test_all_agreed_at_the_turn_limit_awaits_both() -> None:
    p = Pair(max_turns=2).join().agree_all()
    st = p.guest.state
    assert st.phase == "active" and st.turn is None
    assert st.awaiting == {"host", "guest"} and st.your_turn("host") and st.your_turn("guest")


def test_turn_limit_without_agreement_is_closed_not_error() -> None:
    p = Pair(max_turns=1).join()
    p.host_send(Message(text="one"))
    assert p.host.state.result is not None and p.host.state.result.outcome.status == "turn_limit_reached"
    assert both(p) == ("closed", "closed")


def test_timeout_and_error_show_error_and_cancel_closed() -> None:
    p = Pair(turn_timeout_ms=1000).join()
    p.advance(1001)
    assert p.tick().events and both(p) == ("error", "error")
    p = Pair().join()
    p.guest_send(ErrorEvent(code="agent_crashed"))
    assert p.host.state.result is not None and both(p) == ("error", "error")
    p = Pair().join()
    p.host_send(ErrorEvent(code="cancelled"))
    assert p.host.state.result is not None and p.host.state.result.outcome.status == "cancelled"
    assert both(p) == ("closed", "closed")


def test_a_room_ended_locally_is_error_whatever_its_phase() -> None:
    p = Pair().join()
    assert lifecycle(p.guest.state, "guest", ended_locally=True) == "error"
    assert lifecycle(RoomState(room_id=ROOM_ID, host_key=HOST.public_key), "guest", ended_locally=True) == "error"


def test_spec_section_6_names_every_lifecycle() -> None:
    text = re.sub(r"\s+", " ", SPEC.read_text())
    mapping = text[text.index("Participant lifecycle shown to owners") : text.index("## 7.")]
    for name in LIFECYCLES:
        assert f"`{name}` =" in mapping, name
