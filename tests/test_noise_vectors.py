"""The Noise engine against cacophony's vectors: every vector in the file is either checked or fails the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clawroomd.core.errors import LocalProtocolError, RemoteProtocolError
from clawroomd.core.noise import SUPPORTED_PATTERNS, HandshakeState, parse_protocol_name

NAME = "cacophony-25519-chachapoly.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "noise" / NAME
# The copy beside the tests (tests/vectors/README.md gives its origin) keeps the walk running in any checkout.
VECTORS = SHARED if SHARED.exists() else Path(__file__).parent / "vectors" / "noise" / NAME


def _load() -> list[dict[str, Any]]:
    return list(json.loads(VECTORS.read_text())["vectors"])


def _b(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return None if value is None else bytes.fromhex(value)


def _side(vector: dict[str, Any], prefix: str, initiator: bool) -> HandshakeState:
    return HandshakeState(
        vector["protocol_name"],
        initiator=initiator,
        prologue=_b(vector, f"{prefix}_prologue") or b"",
        s=_b(vector, f"{prefix}_static"),
        e=_b(vector, f"{prefix}_ephemeral"),
        rs=_b(vector, f"{prefix}_remote_static"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{prefix}_psks", [])],
    )


def run_vector(vector: dict[str, Any]) -> None:
    init = _side(vector, "init", True)
    resp = _side(vector, "resp", False)
    protocol = init.protocol
    sends = recvs = None
    for i, message in enumerate(vector["messages"]):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        from_initiator = protocol.one_way or i % 2 == 0
        writer, reader = (init, resp) if from_initiator else (resp, init)
        if not init.complete:
            assert writer.write_message(payload) == expected, f"handshake message {i}"
            assert reader.read_message(expected) == payload, f"handshake message {i}"
            if init.complete:
                assert resp.complete
                assert init.handshake_hash == resp.handshake_hash == bytes.fromhex(vector["handshake_hash"])
                sends = {True: init.split()[0], False: resp.split()[0]}
                recvs = {True: resp.split()[1], False: init.split()[1]}
        else:
            assert sends is not None and recvs is not None
            assert sends[from_initiator].encrypt_with_ad(b"", payload) == expected, f"transport message {i}"
            assert recvs[from_initiator].decrypt_with_ad(b"", expected) == payload, f"transport message {i}"
    assert init.complete


def test_walk_every_vector(capsys: pytest.CaptureFixture[str]) -> None:
    vectors = _load()
    checked: dict[str, int] = {}
    for vector in vectors:
        name = vector["protocol_name"]
        # The engine claims every pattern in the file; an unknown one must fail here, not be skipped.
        assert parse_protocol_name(name).pattern in SUPPORTED_PATTERNS, name
        run_vector(vector)
        checked[name] = checked.get(name, 0) + 1
    total = sum(checked.values())
    assert total == len(vectors)
    must = [n for n in checked if n.split("_")[1] in ("XX", "XXpsk3")]
    assert len(must) == 4, must  # XX and XXpsk3, each with SHA256 and BLAKE2s
    with capsys.disabled():
        print(f"\nnoise vectors: checked {total} of {len(vectors)} in {len(checked)} protocols, skipped 0")


def test_tampered_handshake_message_is_rejected() -> None:
    vector = next(v for v in _load() if v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_SHA256")
    init = _side(vector, "init", True)
    resp = _side(vector, "resp", False)
    resp.read_message(init.write_message(b""))
    msg2 = bytearray(resp.write_message(b"payload"))
    msg2[40] ^= 1
    with pytest.raises(RemoteProtocolError) as err:
        init.read_message(bytes(msg2))
    assert err.value.code == "handshake_failed"


def test_short_handshake_message_is_rejected() -> None:
    vector = next(v for v in _load() if v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_SHA256")
    resp = _side(vector, "resp", False)
    with pytest.raises(RemoteProtocolError) as err:
        resp.read_message(b"\x01" * 31)
    assert err.value.code == "handshake_failed"


def test_low_order_point_is_rejected() -> None:
    vector = next(v for v in _load() if v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_SHA256")
    init = _side(vector, "init", True)
    init.write_message(b"")
    with pytest.raises(RemoteProtocolError) as err:
        init.read_message(bytes(32) + bytes(48) + bytes(16))
    assert err.value.code == "handshake_failed"


def test_unknown_protocol_names_are_refused() -> None:
    for name in (
        "Noise_ZZ_25519_ChaChaPoly_SHA256",
        "Noise_XX_448_ChaChaPoly_SHA256",
        "Noise_XXpsk9_25519_ChaChaPoly_SHA256",
    ):
        with pytest.raises(LocalProtocolError):
            parse_protocol_name(name)


def test_multiple_psk_modifiers() -> None:
    psk_a, psk_b = bytes(range(32)), bytes(range(32, 64))
    name = "Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2s"
    init = HandshakeState(name, initiator=True, e=b"\x01" * 32, psks=[psk_a, psk_b])
    resp = HandshakeState(name, initiator=False, e=b"\x02" * 32, psks=[psk_a, psk_b])
    assert resp.read_message(init.write_message(b"a")) == b"a"
    assert init.read_message(resp.write_message(b"b")) == b"b"
    assert init.handshake_hash == resp.handshake_hash
    wrong = HandshakeState(name, initiator=False, e=b"\x02" * 32, psks=[psk_b, psk_a])
    with pytest.raises(RemoteProtocolError):
        wrong.read_message(HandshakeState(name, initiator=True, e=b"\x01" * 32, psks=[psk_a, psk_b]).write_message())
