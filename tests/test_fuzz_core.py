"""Fuzzing the sans-IO core (issue 12 item 6): whatever bytes or text arrive, only the documented errors
come out, and a refused input changes nothing. Profiles: tests/fuzz_profile.py (CLAWROOM_FUZZ=long).

Targets and the one error type each may raise:
  CBOR decoder (cbor.decode)                    LocalProtocolError (malformed / too_large)
  COSE_Sign1 + envelope (open_envelope)         LocalProtocolError
  link frames inside Noise (frames.decode)      RemoteProtocolError
  Noise handshake reader (SecureChannel.read_message, both roles, messages 1-3; Transport.decrypt)
                                                RemoteProtocolError
  room state machine (HostRoom / GuestRoom .receive of correctly signed events of random content)
                                                RemoteProtocolError, room unchanged
  join URL parser (JoinURL.parse)               LocalProtocolError("bad_join_url")
"""

from __future__ import annotations

import os

import cbor2
from fuzz_profile import FUZZ, counted, only
from hypothesis import given
from hypothesis import strategies as st
from roompair import FIELDS, GUEST, HOST, ROOM_ID, Pair

from clawroomd.core import cbor, cose
from clawroomd.core.channel import SecureChannel
from clawroomd.core.envelope import MAX_EVENT_BYTES, open_envelope
from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.events import Message, Move
from clawroomd.core.joinurl import JoinURL
from clawroomd.core.noise import MAX_MESSAGE_LEN
from clawroomd.link import frames

# -- inputs ------------------------------------------------------------------------------------------------
_leaf = st.one_of(
    st.integers(-(2**64), 2**64 - 1), st.text(max_size=12), st.binary(max_size=40), st.booleans(), st.none()
)
values = st.recursive(
    _leaf,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8) | st.integers(-3, 30), kids, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A valid input with a few byte-level edits: flips, cuts, insertions, splices of random bytes."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x5F, 0x7F, 0x9F, 0xBF, 0xD2, 0xFF]))
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def _room_envelopes() -> list[bytes]:
    p = Pair().join().agree_all()
    p.propose_close("host")
    return [e.envelope for e in p.host.log]


ENVELOPES = _room_envelopes()
cbor_bytes = st.one_of(st.binary(max_size=300), mutated(values.map(cbor.encode)), mutated(st.sampled_from(ENVELOPES)))


# -- CBOR, COSE, envelopes, link frames ------------------------------------------------------------------
def test_fuzz_cbor_decoder() -> None:
    with counted("CBOR decoder") as tick:

        @FUZZ
        @given(cbor_bytes, st.booleans())
        def run(data: bytes, tagged: bool) -> None:
            tick()
            out = only(
                (LocalProtocolError,),
                lambda: cbor.decode(data, max_size=4096, tags=frozenset({18}) if tagged else frozenset()),
            )
            if not isinstance(out, LocalProtocolError):
                assert cbor2.dumps(out, canonical=True) == data  # what is accepted is exactly canonical

        run()


def test_fuzz_cose_and_envelopes() -> None:
    with counted("COSE_Sign1 and envelopes") as tick:

        @FUZZ
        @given(st.one_of(mutated(st.sampled_from(ENVELOPES)), st.binary(max_size=200).map(lambda b: b"\xd2\x84" + b)))
        def run(data: bytes) -> None:
            tick()
            only((LocalProtocolError,), lambda: cose.decode_sign1(data, max_size=MAX_EVENT_BYTES))
            out = only((LocalProtocolError,), lambda: open_envelope(data))
            if not isinstance(out, LocalProtocolError):
                assert data in ENVELOPES  # an edit that still verifies would be a forgery

        run()


def test_fuzz_link_frames() -> None:
    seeds = st.sampled_from(
        [frames.HEARTBEAT_FRAME, frames.ACCEPTED_FRAME, frames.encode_data({"t": "sync", "room": ROOM_ID, "after": -1})]
    )
    with counted("link frames") as tick:

        @FUZZ
        @given(st.one_of(mutated(seeds), values.map(cbor.encode), st.binary(max_size=100)))
        def run(data: bytes) -> None:
            tick()
            only((RemoteProtocolError,), lambda: frames.decode(data))

        run()


# -- the Noise handshake reader ----------------------------------------------------------------------------
def _channels(seed: bytes) -> tuple[SecureChannel, SecureChannel]:
    guest = SecureChannel(
        initiator=True,
        identity=GUEST,
        static_private=seed[:32],
        ephemeral_private=seed[32:64],
        expected_peer_id=HOST.peer_id,
    )
    host = SecureChannel(initiator=False, identity=HOST, static_private=seed[64:96], ephemeral_private=seed[96:128])
    return guest, host


def _honest_messages(seed: bytes) -> list[bytes]:
    guest, host = _channels(seed)
    m1 = guest.write_message()
    host.read_message(m1)
    m2 = host.write_message()
    guest.read_message(m2)
    m3 = guest.write_message()
    host.read_message(m3)
    return [m1, m2, m3]


SEED = bytes(range(128))
HONEST = _honest_messages(SEED)


def test_fuzz_noise_handshake_reader() -> None:
    """Either side reads a hostile message at any step of XX: its first, the host's reply, the guest's
    last; the rest of the exchange is honest. Then, on a completed channel, hostile transport messages."""
    with counted("Noise handshake reader") as tick:

        @FUZZ
        @given(st.integers(0, 2), st.one_of(mutated(st.sampled_from(HONEST)), st.binary(max_size=300)))
        def run(step: int, bad: bytes) -> None:
            tick()
            guest, host = _channels(SEED)
            readers = [host, guest, host]
            writers = [guest, host, guest]
            for i in range(step):
                readers[i].read_message(writers[i].write_message())
            writers[step].write_message()  # the honest message it replaces (keeps the writer's state in step)
            out = only((RemoteProtocolError,), lambda: readers[step].read_message(bad))
            if isinstance(out, RemoteProtocolError):
                assert only((LocalProtocolError,), lambda: readers[step].read_message(HONEST[step]))  # dead now
            elif step == 2:
                assert bad == HONEST[2] or host.complete

        run()


def test_fuzz_noise_transport() -> None:
    guest, host = _channels(SEED)
    host.read_message(guest.write_message())
    guest.read_message(host.write_message())
    host.read_message(guest.write_message())
    sent = [guest.transport().encrypt(frames.encode_data({"n": i})) for i in range(3)]
    with counted("Noise transport decrypt") as tick:

        @FUZZ
        @given(
            st.one_of(mutated(st.sampled_from(sent)), st.binary(max_size=200), st.just(b"\x00" * (MAX_MESSAGE_LEN + 1)))
        )
        def run(data: bytes) -> None:
            tick()
            g, h = _channels(SEED)
            h.read_message(g.write_message())
            g.read_message(h.write_message())
            h.read_message(g.write_message())
            out = only((RemoteProtocolError,), lambda: h.transport().decrypt(data))
            if not isinstance(out, RemoteProtocolError):
                assert data == sent[0]

        run()


# -- the room state machine --------------------------------------------------------------------------------
KINDS = [
    "joined",
    "message",
    "consult_started",
    "consult_ended",
    "close_proposed",
    "close_accepted",
    "room_closed",
    "error",
    "room_created",
    "nonsense",
]
body_values = st.fixed_dictionaries(
    {},
    optional={
        "text": st.text(max_size=30) | values,
        "label": st.text(max_size=10) | values,
        "moves": st.lists(
            st.fixed_dictionaries(
                {"op": st.sampled_from(["propose", "accept", "reject", "counter", "x"]) | values},
                optional={
                    "field": st.sampled_from(["amount_format", "hash_algorithm", "zz"]) | values,
                    "value": st.text(max_size=10) | values,
                },
            ),
            max_size=3,
        )
        | values,
        "outcome": values,
        "digest": st.binary(min_size=32, max_size=32) | values,
        "status": st.sampled_from(["agreement_reached", "no_agreement", "x"]) | values,
        "reason": st.text(max_size=10) | values,
    },
)


class Token:
    """A placeholder drawn by the strategy and filled in from the room's state when the event is signed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEXT, SAME, SKIP, HEAD, NOW, FUTURE, ME = (Token(n) for n in ("next", "same", "skip", "head", "now", "future", "me"))
# Built once: drawing from strategies made afresh per input cost ~50 ms each in Hypothesis itself.
junk = _leaf | st.lists(_leaf, max_size=3) | st.dictionaries(st.text(max_size=5), _leaf, max_size=3)


def _real_payloads() -> list[dict[str, object]]:
    out = []
    for env in ENVELOPES:
        payload = cbor.decode(cose.decode_sign1(env, max_size=MAX_EVENT_BYTES).payload, max_size=MAX_EVENT_BYTES)
        out.append(payload)
    return out


REAL_BODIES = [(p["kind"], p["body"]) for p in _real_payloads()] + [
    ("consult_started", {}),
    ("consult_ended", {}),
    ("message", {"text": "ok", "moves": [{"op": "accept", "field": "amount_format", "value": "v-amount_format"}]}),
    ("message", {"text": "no", "moves": [{"op": "reject", "field": "hash_algorithm"}]}),
]
# Built once: strategies made afresh per input cost ~50 ms each in Hypothesis itself.
event_templates = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "room": st.sampled_from([ROOM_ID, ROOM_ID, "cr_ffffffffffffffffffff"]),
        "seq": st.sampled_from([NEXT, NEXT, NEXT, SAME, SKIP, -1]),
        "prev": st.sampled_from([HEAD, HEAD, HEAD, bytes(32)]),
        "author": st.sampled_from([ME, ME, ME, "host", "guest"]),
        "ts": st.sampled_from([NOW, NOW, NOW, FUTURE, 0]),
        "sid": st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True),
        "kind_body": st.sampled_from(REAL_BODIES),
    }
)
HEADER_KEYS = ["v", "room", "seq", "prev", "author", "ts", "sid", "kind", "body"]
# most inputs keep every header field and a real body: they get past the decoder to the rules
dropped_keys = st.sets(st.sampled_from(HEADER_KEYS), max_size=1)
corrupted = st.dictionaries(st.sampled_from(HEADER_KEYS), junk, max_size=2) | st.tuples(
    st.sampled_from(KINDS), body_values
).map(lambda kb: {"kind": kb[0], "body": kb[1]})


def noise(data: st.DataObject) -> tuple[set[str], dict[str, object]]:
    """For one input in four, a header field dropped or fields replaced by anything (a random body too);
    the others are well-formed and get past the decoder to the rules."""
    if data.draw(st.integers(0, 3)):
        return set(), {}
    return data.draw(dropped_keys), data.draw(corrupted)


def signed_event(
    template: dict[str, object], drop: set[str], corrupt: dict[str, object], room: Pair, author: str
) -> bytes:
    """The template's payload, placeholders filled from `room`'s state, correctly signed by `author`'s key:
    it passes the signature check and reaches the rules."""
    state = room.host.state
    fill = {
        NEXT: state.seq + 1,
        SAME: state.seq,
        SKIP: state.seq + 2,
        HEAD: state.head,
        NOW: room.now,
        FUTURE: room.now + 10**9,
        ME: author,
    }
    template = dict(template)
    template["kind"], template["body"] = template.pop("kind_body")  # type: ignore[misc]
    template.update(corrupt)
    payload = {k: fill.get(v, v) if isinstance(v, Token) else v for k, v in template.items() if k not in drop}
    payload["key"] = (GUEST if author == "guest" else HOST).public_key
    try:
        data = cbor.encode(payload)
    except LocalProtocolError:
        data = cbor.encode({"kind": "message"})
    return cose.sign1(GUEST if author == "guest" else HOST, data)


def _wire_keys_check() -> None:
    """The payload's real key names, so the strategy above stays in step with events.py."""
    payload = cbor.decode(cose.decode_sign1(ENVELOPES[1], max_size=MAX_EVENT_BYTES).payload, max_size=MAX_EVENT_BYTES)
    assert set(payload) <= {"v", "room", "seq", "prev", "author", "key", "ts", "sid", "kind", "body"}, sorted(payload)


def test_fuzz_room_state_machine() -> None:
    _wire_keys_check()
    p = Pair().join()  # then the host proposes both fields: the guest's turn, with proposals to accept
    p.host_send(Message(text="offer", moves=tuple(Move(op="propose", field=f, value=f"v-{f}") for f in FIELDS)))
    base = p.host.state.seq
    refusals: dict[str, int] = {}
    with counted("room state machine") as tick:

        @FUZZ
        @given(st.data())
        def run(data: st.DataObject) -> None:
            tick()
            try:
                for _ in range(data.draw(st.integers(1, 3))):  # a few in a row: accepted ones move the room on
                    env = signed_event(data.draw(event_templates), *noise(data), p, "guest")
                    before = p.host.state  # immutable: a refusal must leave this very state in place
                    out = only(
                        (RemoteProtocolError,),
                        lambda env=env: p.host.receive(env, now_ms=p.now, mono_ms=p.mono, from_key=GUEST.public_key),
                    )
                    if isinstance(out, RemoteProtocolError):
                        assert p.host.state == before
                        refusals[out.code] = refusals.get(out.code, 0) + 1
                    else:
                        refusals["(accepted)"] = refusals.get("(accepted)", 0) + 1
                        for e in out.events:
                            p.guest.receive(e.envelope, now_ms=p.now)
                        p.assert_same()
                env = signed_event(data.draw(event_templates), *noise(data), p, "host")
                before = p.guest.state
                if isinstance(
                    only((RemoteProtocolError,), lambda: p.guest.receive(env, now_ms=p.now)), RemoteProtocolError
                ):
                    assert p.guest.state == before
            finally:
                p.host.rollback(base)  # back to the joined room for the next input
                p.guest.rollback(base)

        run()
        print("host answers:", dict(sorted(refusals.items(), key=lambda kv: -kv[1])))


# -- the join URL parser -----------------------------------------------------------------------------------
VALID_URL = JoinURL(
    room_id=ROOM_ID,
    host_peer_id=HOST.peer_id,
    addrs=(("127.0.0.1", 7643), ("::1", 7643), ("host.lan", 1)),
    secret=os.urandom(16),
).format()
url_text = st.one_of(
    st.text(max_size=200),
    mutated(st.just(VALID_URL.encode())).map(lambda b: b.decode("utf-8", "replace")),
    st.lists(
        st.sampled_from(
            [
                "clawroom://join/",
                ROOM_ID,
                "?",
                "&",
                "peer=",
                HOST.peer_id,
                "at=",
                "[::1]:1",
                "s=",
                "AAAAAAAAAAAAAAAAAAAAAA",
                "%",
                "%ff",
                "#",
                " ",
                "\u201c",
                ")",
                ":",
                "=",
                "0",
                "\n",
            ]
        ),
        max_size=12,
    ).map("".join),
)


def test_fuzz_join_url_parser() -> None:
    with counted("join URL parser") as tick:

        @FUZZ
        @given(url_text)
        def run(text: str) -> None:
            tick()
            out = only((LocalProtocolError,), lambda: JoinURL.parse(text))
            if isinstance(out, LocalProtocolError):
                assert out.code == "bad_join_url" and out.message
            else:
                assert JoinURL.parse(out.format()) == out  # what parses is stable under formatting

        run()
