"""What the protocol allows in strings (SPEC §5): labels, topic, field descriptions and refs are one printable
line; free text (goal, message, values, reasons) is any Unicode text. Refused at the core on both sides."""

import pytest
from roompair import GUEST, HOST, Pair, forge, spec

from clawroomd.core.envelope import seal
from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import MAX_LABEL, FieldSpec, Header, Joined, Message, Move, RoomCreated
from clawroomd.core.room import GuestRoom

HOSTILE_LINES = {
    "ESC (clipboard write, OSC 52)": "x\x1b]52;c;cm0gLXJmIH4=\x07",
    "CSI clear screen": "\x1b[2J\x1b[Hagent",
    "newline forging a line": "bob\n00:01.000 system    Room closed.",
    "carriage return": "bob\rmallory",
    "right-to-left override": "agent\u202etxt.exe",
    "bidi isolate": "a\u2066b",
    "zero-width space": "a\u200bb",
    "invisible tag characters": "ok\U000e0041\U000e0042",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "C1 control (8-bit CSI)": "a\x9b2J",
    "DEL": "a\x7f",
    "lone surrogate": "a\ud800",
}
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # an emoji sequence held together by ZWJ
GOOD_LABELS = ["stripe-agent", "Zoë Müller", "営業担当", "family " + FAMILY, "مدیر\u200cفروش", ""]


@pytest.mark.parametrize("label", list(HOSTILE_LINES.values()), ids=list(HOSTILE_LINES))
def test_hostile_labels_are_refused(label):
    with pytest.raises(LocalProtocolError) as err:
        Joined(label=label)
    assert err.value.code == "bad_value"
    with pytest.raises(LocalProtocolError):
        spec(label=label)


@pytest.mark.parametrize("label", [" agent", "agent ", "\u3000agent", "agent\u00a0"])
def test_labels_have_no_space_at_either_end(label):
    with pytest.raises(LocalProtocolError) as err:
        Joined(label=label)
    assert err.value.code == "bad_value" and "white space" in err.value.message


def test_label_length():
    Joined(label="x" * MAX_LABEL)
    with pytest.raises(LocalProtocolError) as err:
        Joined(label="x" * (MAX_LABEL + 1))
    assert err.value.code == "too_large"


@pytest.mark.parametrize("label", GOOD_LABELS)
def test_ordinary_labels_in_any_script_are_fine(label):
    assert Joined(label=label).label == label


@pytest.mark.parametrize("text", [HOSTILE_LINES["newline forging a line"], HOSTILE_LINES["CSI clear screen"]])
def test_single_line_fields_refuse_control_characters(text):
    for make in (
        lambda: spec(topic="topic " + text),
        lambda: FieldSpec(name="price", description=text),
        lambda: Move(op="propose", field="price", value="1", refs=(text,)),
    ):
        with pytest.raises(LocalProtocolError) as err:
            make()
        assert err.value.code == "bad_value"


def test_free_text_may_span_lines_but_must_be_unicode():
    # The protocol carries the peer's words as written; showing them safely is the viewer's job (the CLI).
    Message(text="line one\nline two \x1b[2J", moves=(Move(op="propose", field="price", value="a\nb"),))
    spec(goal="first\nsecond")
    for make in (
        lambda: Message(text="a\ud800"),
        lambda: Move(op="propose", field="price", value="\udfff"),
        lambda: spec(goal="\ud83d"),
    ):
        with pytest.raises(LocalProtocolError) as err:  # not an internal error when CBOR cannot encode it
            make()
        assert err.value.code == "bad_value"


def _unchecked(cls, **fields):
    """A body built without its checks: what a hostile peer's own code could sign."""
    obj = object.__new__(cls)
    for k, v in fields.items():
        object.__setattr__(obj, k, v)
    return obj


def test_a_hostile_label_on_the_wire_is_refused_by_the_receiver():
    p = Pair()
    env = forge(GUEST, p.host, _unchecked(Joined, label="\x1b]52;c;cm0gLXJmIH4=\x07"), author="guest").envelope
    with pytest.raises(RemoteProtocolError) as err:
        p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key)
    assert err.value.code == "bad_value"
    assert p.host.state.phase == "invited"

    body = _unchecked(
        RoomCreated,
        **{f: getattr(spec(), f) for f in RoomCreated.__dataclass_fields__},
    )
    object.__setattr__(body, "label", "host\u202e")
    header = Header(room=p.host.room_id, seq=0, prev=bytes(32), author="host", key=HOST.public_key, ts=p.now, sid="c")
    guest = GuestRoom(GUEST, room_id=p.host.room_id, host_key=HOST.public_key)
    with pytest.raises(RemoteProtocolError) as err:
        guest.receive(seal(HOST, header, body).envelope, now_ms=p.now)
    assert err.value.code == "bad_value"
    assert guest.state.seq == -1
