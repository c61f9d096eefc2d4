"""The identity-bound XX channel as pure pairs: honest runs, limits, and every man-in-the-middle we refuse."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawroomd.core import cbor
from clawroomd.core.channel import (
    MAX_PLAINTEXT,
    PROLOGUE,
    PROTOCOL_NAME,
    STATIC_KEY_PREFIX,
    SecureChannel,
    Transport,
)
from clawroomd.core.errors import (
    CLOSE_BAD_SIGNATURE,
    CLOSE_UNDECRYPTABLE,
    CLOSE_WRONG_PEER,
    LocalProtocolError,
    RemoteProtocolError,
)
from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite
from clawroomd.core.noise import HandshakeState, x25519_public

HOST = Identity.from_seed(b"h" * 32)
GUEST = Identity.from_seed(b"g" * 32)
EVE = Identity.from_seed(b"e" * 32)
HOST_STATIC, GUEST_STATIC, EVE_STATIC = b"H" * 32, b"G" * 32, b"E" * 32
INVITE = Invite(room_id="cr_0123456789abcdef", secret=b"s" * 16)


def guest(expected: str | None = HOST.peer_id, invite: Invite | None = INVITE, **kw: object) -> SecureChannel:
    return SecureChannel(
        initiator=True,
        identity=GUEST,
        static_private=GUEST_STATIC,
        ephemeral_private=os.urandom(32),
        expected_peer_id=expected,
        invite=invite,
        **kw,  # type: ignore[arg-type]
    )


def host(identity: Identity = HOST, static: bytes = HOST_STATIC, **kw: object) -> SecureChannel:
    return SecureChannel(
        initiator=False,
        identity=identity,
        static_private=static,
        ephemeral_private=os.urandom(32),
        **kw,  # type: ignore[arg-type]
    )


def handshake(g: SecureChannel, h: SecureChannel) -> list[bytes]:
    m1 = g.write_message()
    h.read_message(m1)
    m2 = h.write_message()
    g.read_message(m2)
    m3 = g.write_message()
    h.read_message(m3)
    return [m1, m2, m3]


def rogue_responder(payload: bytes, static: bytes = EVE_STATIC) -> tuple[SecureChannel, RemoteProtocolError]:
    """A responder that speaks correct Noise but puts whatever it likes in its payload."""
    g = guest()
    r = HandshakeState(PROTOCOL_NAME, initiator=False, prologue=PROLOGUE, s=static, e=os.urandom(32))
    r.read_message(g.write_message())
    with pytest.raises(RemoteProtocolError) as err:
        g.read_message(r.write_message(payload))
    return g, err.value


def test_honest_join() -> None:
    g, h = guest(), host()
    m1, _, m3 = handshake(g, h)
    assert len(m1) == 32  # message 1 is the bare ephemeral key: no data
    assert g.complete and h.complete
    assert g.peer_peer_id == HOST.peer_id and h.peer_public_key == GUEST.public_key
    assert h.peer_invite == INVITE and g.peer_invite is None
    assert g.handshake_hash == h.handshake_hash
    assert g.sas == h.sas and len(g.sas) == 6 and g.sas.isdigit()
    assert INVITE.secret not in m3
    gt, ht = g.transport(), h.transport()
    assert ht.decrypt(gt.encrypt(b"hello")) == b"hello"
    assert gt.decrypt(ht.encrypt(b"there")) == b"there"


def test_host_may_be_learned_rather_than_pinned() -> None:
    g, h = guest(expected=None, invite=None), host()
    handshake(g, h)
    assert g.peer_peer_id == HOST.peer_id and h.peer_invite is None


def test_payload_sizes_round_trip() -> None:
    g, h = guest(), host()
    handshake(g, h)
    gt, ht = g.transport(), h.transport()
    rng = random.Random(7)
    sizes = [0, 1, MAX_PLAINTEXT - 1, MAX_PLAINTEXT] + [rng.randrange(MAX_PLAINTEXT + 1) for _ in range(40)]
    for size in sizes:
        data = rng.randbytes(size)
        wire = gt.encrypt(data)
        assert len(wire) <= 65535
        assert ht.decrypt(wire) == data
        assert gt.decrypt(ht.encrypt(data)) == data
    with pytest.raises(LocalProtocolError) as err:
        gt.encrypt(bytes(MAX_PLAINTEXT + 1))
    assert err.value.code == "too_large"


def test_rekey_is_deterministic_on_both_sides() -> None:
    g, h = guest(rekey_interval=4), host(rekey_interval=4)
    handshake(g, h)
    gt, ht = g.transport(), h.transport()
    for i in range(21):
        assert ht.decrypt(gt.encrypt(b"%d" % i)) == b"%d" % i
    # A side that did not rekey cannot read past the interval: the keys really changed.
    g2, h2 = guest(rekey_interval=4), host(rekey_interval=1000)
    handshake(g2, h2)
    gt2, ht2 = g2.transport(), h2.transport()
    for _ in range(4):
        ht2.decrypt(gt2.encrypt(b"x"))
    with pytest.raises(RemoteProtocolError):
        ht2.decrypt(gt2.encrypt(b"x"))


# -- man in the middle ------------------------------------------------------------------------------


def test_wrong_host_key_is_refused_before_the_invite_leaves() -> None:
    g, eve = guest(), host(identity=EVE, static=EVE_STATIC)
    eve.read_message(g.write_message())
    with pytest.raises(RemoteProtocolError) as err:
        g.read_message(eve.write_message())
    assert err.value.code == "wrong_peer" and err.value.close_code == CLOSE_WRONG_PEER
    with pytest.raises(LocalProtocolError):
        g.write_message()  # the invite never goes out


def _signed(identity: Identity, static_private: bytes) -> bytes:
    return identity.sign(STATIC_KEY_PREFIX + x25519_public(static_private))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "missing_identity"),
        (cbor.encode({"identity": HOST.public_key}), "missing_identity"),
        (cbor.encode({"identity": HOST.public_key, "signature": b""}), "missing_identity"),
        (cbor.encode({"signature": _signed(HOST, EVE_STATIC)}), "missing_identity"),
        (cbor.encode({"identity": HOST.public_key, "signature": bytes(64)}), "bad_identity_signature"),
        # Eve's static key signed by Eve, but claiming the host's identity.
        (cbor.encode({"identity": HOST.public_key, "signature": _signed(EVE, EVE_STATIC)}), "bad_identity_signature"),
        # The host's signature over the host's static key, replayed next to Eve's static key.
        (cbor.encode({"identity": HOST.public_key, "signature": _signed(HOST, HOST_STATIC)}), "bad_identity_signature"),
        (cbor.encode({"identity": EVE.public_key, "signature": _signed(EVE, EVE_STATIC)}), "wrong_peer"),
        (cbor.encode({"identity": HOST.public_key, "signature": b"x" * 64, "extra": 1}), "malformed"),
        (
            cbor.encode(
                {"identity": HOST.public_key, "signature": b"x" * 64, "invite": {"room": "cr_00000000", "secret": b""}}
            ),
            "malformed",
        ),
        (b"\xff\x00", "malformed"),
        (cbor.encode([1, 2]), "malformed"),
    ],
)
def test_forged_identity_payloads_are_refused(payload: bytes, code: str) -> None:
    g, err = rogue_responder(payload)
    assert err.code == code
    assert not g.complete
    with pytest.raises(LocalProtocolError):
        g.write_message()


def test_identity_swapped_between_sessions() -> None:
    # Eve opens a real session to the host, learns its signed payload, and shows it to the guest.
    eve_as_guest = HandshakeState(PROTOCOL_NAME, initiator=True, prologue=PROLOGUE, s=EVE_STATIC, e=os.urandom(32))
    h = host()
    h.read_message(eve_as_guest.write_message())
    host_payload = eve_as_guest.read_message(h.write_message())
    assert cbor.decode(host_payload, max_size=1000)["identity"] == HOST.public_key
    _, err = rogue_responder(host_payload, static=EVE_STATIC)
    assert err.code == "bad_identity_signature" and err.close_code == CLOSE_BAD_SIGNATURE


def test_forged_guest_identity_is_refused_by_host() -> None:
    h = host()
    eve = HandshakeState(PROTOCOL_NAME, initiator=True, prologue=PROLOGUE, s=EVE_STATIC, e=os.urandom(32))
    h.read_message(eve.write_message())
    eve.read_message(h.write_message())
    forged = {"identity": GUEST.public_key, "signature": _signed(GUEST, GUEST_STATIC)}
    forged["invite"] = {"room": INVITE.room_id, "secret": INVITE.secret}
    with pytest.raises(RemoteProtocolError) as err:
        h.read_message(eve.write_message(cbor.encode(forged)))
    assert err.value.code == "bad_identity_signature"
    with pytest.raises(LocalProtocolError):
        _ = h.peer_invite  # nothing learned from a refused handshake


def test_host_may_not_send_an_invite() -> None:
    payload = {"identity": HOST.public_key, "signature": _signed(HOST, EVE_STATIC)}
    payload["invite"] = {"room": INVITE.room_id, "secret": INVITE.secret}
    _, err = rogue_responder(cbor.encode(payload))
    assert err.code == "malformed"


def test_data_in_message_one_is_refused() -> None:
    eve = HandshakeState(PROTOCOL_NAME, initiator=True, prologue=PROLOGUE, s=EVE_STATIC, e=os.urandom(32))
    with pytest.raises(RemoteProtocolError) as err:
        host().read_message(eve.write_message(b"early data"))
    assert err.value.code == "handshake_failed"


def test_replayed_handshake_messages_are_refused() -> None:
    g, h = guest(), host()
    m1, _, m3 = handshake(g, h)
    # Replaying message 1 only makes the host answer with a fresh ephemeral key ...
    h2 = host()
    h2.read_message(m1)
    h2.write_message()
    # ... so the recorded message 3 no longer decrypts and the invite in it is never read.
    with pytest.raises(RemoteProtocolError) as err:
        h2.read_message(m3)
    assert err.value.code == "handshake_failed"
    with pytest.raises(LocalProtocolError):
        _ = h2.peer_invite
    # And replaying the host's message 2 to a new guest fails the same way.
    g2 = guest()
    g2.write_message()
    with pytest.raises(RemoteProtocolError):
        g2.read_message(handshake(guest(), host())[1])


def test_replayed_and_reordered_transport_messages_are_refused() -> None:
    g, h = guest(), host()
    handshake(g, h)
    gt, ht = g.transport(), h.transport()
    a, b = gt.encrypt(b"first"), gt.encrypt(b"second")
    assert ht.decrypt(a) == b"first"
    with pytest.raises(RemoteProtocolError) as err:
        ht.decrypt(a)
    assert err.value.code == "undecryptable" and err.value.close_code == CLOSE_UNDECRYPTABLE
    with pytest.raises(RemoteProtocolError):
        ht.decrypt(b)  # a failed channel stays failed

    g, h = guest(), host()
    handshake(g, h)
    gt, ht = g.transport(), h.transport()
    a, b = gt.encrypt(b"first"), gt.encrypt(b"second")
    with pytest.raises(RemoteProtocolError):
        ht.decrypt(b)


def test_oversized_and_truncated_transport_messages() -> None:
    g, h = guest(), host()
    handshake(g, h)
    with pytest.raises(RemoteProtocolError) as err:
        h.transport().decrypt(bytes(65536))
    assert err.value.code == "too_large"
    g, h = guest(), host()
    handshake(g, h)
    with pytest.raises(RemoteProtocolError) as err:
        h.transport().decrypt(b"short")
    assert err.value.code == "undecryptable"


def test_misuse_is_local() -> None:
    with pytest.raises(LocalProtocolError):
        host(invite=INVITE)
    with pytest.raises(LocalProtocolError):
        guest(expected="not a peer id")
    g = guest()
    with pytest.raises(LocalProtocolError):
        _ = g.sas
    with pytest.raises(LocalProtocolError):
        g.read_message(b"x" * 32)  # our turn, not theirs


# -- random bytes from the peer only ever raise RemoteProtocolError ------------------------------------


@settings(max_examples=150, deadline=None)
@given(stage=st.integers(0, 2), junk=st.binary(max_size=300))
def test_random_handshake_bytes(stage: int, junk: bytes) -> None:
    g, h = guest(), host()
    try:
        if stage == 0:
            h.read_message(junk)
        elif stage == 1:
            h.read_message(g.write_message())
            g.read_message(junk)
        else:
            h.read_message(g.write_message())
            g.read_message(h.write_message())
            h.read_message(junk)
    except RemoteProtocolError:
        return
    # Only a 32-byte message 1 can be accepted from random bytes (it is just a public key).
    assert stage == 0 and len(junk) == 32


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=200))
def test_random_transport_bytes(junk: bytes) -> None:
    g, h = guest(), host()
    handshake(g, h)
    t: Transport = h.transport()
    with pytest.raises(RemoteProtocolError):
        t.decrypt(junk)
