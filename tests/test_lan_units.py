"""Pure parts of LAN discovery and joining by room id: the TXT record, interface choice, the join request
in the handshake, and the SAS both owners compare."""

from __future__ import annotations

import hashlib
import os

import pytest

from clawroomd.core import cbor
from clawroomd.core.channel import SAS_PREFIX, STATIC_KEY_PREFIX, SecureChannel, decode_payload, sas_for
from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite, JoinRequest
from clawroomd.core.noise import x25519_public
from clawroomd.lan.interfaces import Interface, NoInterface, choose
from clawroomd.lan.txt import MAX_NAME, BadAdvert, encode_txt, instance_name, parse_txt

PEER = Identity.from_seed(b"p" * 32).peer_id
ROOM = "cr_0123456789abcdef"


def props(**kw: str | None) -> dict[bytes, bytes | None]:
    return {k.encode(): (v.encode() if v is not None else None) for k, v in kw.items()}


def test_txt_round_trip_carries_only_id_name_and_version() -> None:
    txt = encode_txt(PEER.lower().replace("-", ""), "alice")
    assert txt == {"id": PEER, "name": "alice", "v": "1"}  # never a room id or a topic
    advert = parse_txt({k.encode(): v.encode() for k, v in txt.items()})
    assert (advert.peer_id, advert.name, advert.version) == (PEER, "alice", 1)


def test_txt_reading_forgives_what_it_can() -> None:
    advert = parse_txt(props(id=PEER, v="1", name="bob\x1b[2J\nthe builder", future="x", flag=None))
    assert advert.name == "bob [2J the builder"  # no control characters, one line
    assert parse_txt(props(id=PEER, v="1")).name == ""
    assert len(parse_txt(props(id=PEER, v="1", name="n" * 100)).name) == MAX_NAME


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (props(v="1", name="x"), "no id"),
        (props(id="", v="1"), "no id"),
        (props(id=PEER[:-1] + ("A" if PEER[-1] != "A" else "B"), v="1"), "not a peer id"),  # checksum
        (props(id=PEER), "protocol version"),
        (props(id=PEER, v="one"), "protocol version"),
        (props(id=PEER, v="2"), "we speak 1"),
        (props(id=PEER, v="1", name="x" * 300), "longer than"),
    ],
)
def test_txt_refuses_what_cannot_be_a_peer(record: dict[bytes, bytes | None], why: str) -> None:
    with pytest.raises(BadAdvert, match=why):
        parse_txt(record)


def test_instance_name_fits_a_dns_label() -> None:
    name = instance_name(PEER, "ü" * 48)
    assert len(name.encode()) <= 63 and name.endswith(f"[{PEER.replace('-', '')[:8]}]")
    assert instance_name(PEER, "a.b") == f"a b [{PEER.replace('-', '')[:8]}]"  # a dot would split the label


def test_interfaces_default_to_private_ones_and_pins_must_exist() -> None:
    found = [
        Interface("lo", "127.0.0.1"), Interface("eth0", "192.168.1.5"), Interface("wan", "203.0.114.9"),
        Interface("wg0", "10.8.0.2"),
    ]  # fmt: skip
    assert [i.name for i in choose((), found)] == ["eth0", "wg0"]
    assert [i.name for i in choose(("wan",), found)] == ["wan"]  # the owner's choice wins
    with pytest.raises(NoInterface, match="lan9"):
        choose(("lan9",), found)
    with pytest.raises(NoInterface, match="--lan-interface"):
        choose((), [Interface("lo", "127.0.0.1")])


def channels(presented: Invite | JoinRequest | None) -> tuple[SecureChannel, SecureChannel]:
    g = SecureChannel(
        initiator=True, identity=Identity.from_seed(b"g" * 32), static_private=b"G" * 32,
        ephemeral_private=os.urandom(32), invite=presented,
    )  # fmt: skip
    h = SecureChannel(
        initiator=False, identity=Identity.from_seed(b"h" * 32), static_private=b"H" * 32,
        ephemeral_private=os.urandom(32),
    )  # fmt: skip
    h.read_message(g.write_message())
    g.read_message(h.write_message())
    h.read_message(g.write_message())
    return g, h


def test_join_request_travels_in_message_3_and_both_sides_derive_one_sas() -> None:
    g, h = channels(JoinRequest(room_id=ROOM))
    assert h.peer_invite == JoinRequest(room_id=ROOM) and h.peer_public_key == Identity.from_seed(b"g" * 32).public_key
    assert g.sas == h.sas
    g2, h2 = channels(JoinRequest(room_id=ROOM))
    assert g2.sas == h2.sas and g2.handshake_hash != g.handshake_hash  # a new connection, a new code


def test_sas_derivation() -> None:
    h = bytes(range(32))
    digest = hashlib.sha256(b"clawroom-sas-v1:" + h).digest()
    assert SAS_PREFIX == b"clawroom-sas-v1:"
    assert sas_for(h) == f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"
    assert sas_for(b"\x00" * 32) == sas_for(b"\x00" * 32) != sas_for(b"\x00" * 31 + b"\x01")
    assert all(len(sas_for(bytes([i]) * 32)) == 6 for i in range(50))  # zero-padded


def test_join_request_is_checked() -> None:
    with pytest.raises(LocalProtocolError):
        JoinRequest(room_id="not-a-room")


@pytest.mark.parametrize(
    "extra",
    [
        {"request": {"room": ROOM}, "invite": {"room": ROOM, "secret": b"s" * 16}},  # both at once
        {"request": {"room": ROOM, "secret": b"s" * 16}},  # a request has no secret
        {"request": {"room": "cr_xyz"}},
        {"request": ROOM},
    ],
)
def test_malformed_join_requests_end_the_handshake(extra: dict[str, object]) -> None:
    ident, static = Identity.from_seed(b"g" * 32), x25519_public(b"G" * 32)
    body = {"identity": ident.public_key, "signature": ident.sign(STATIC_KEY_PREFIX + static), **extra}
    with pytest.raises(RemoteProtocolError) as err:
        decode_payload(cbor.encode(body), static, invite_allowed=True)
    assert err.value.code == "malformed"
    ok = {"identity": ident.public_key, "signature": ident.sign(STATIC_KEY_PREFIX + static), "request": {"room": ROOM}}
    with pytest.raises(RemoteProtocolError):  # never from the host
        decode_payload(cbor.encode(ok), static, invite_allowed=False)
