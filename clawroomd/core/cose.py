"""COSE_Sign1 (RFC 9052 §4.2) with EdDSA (alg -8) over Ed25519, on top of the strict CBOR codec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from . import cbor
from .errors import LocalProtocolError
from .identity import Identity, verify

TAG_SIGN1 = 18
ALG_EDDSA = -8
HDR_ALG = 1


def _sig_structure(protected: bytes, external_aad: bytes, payload: bytes) -> bytes:
    return cbor.encode(["Signature1", protected, external_aad, payload])


def _protected_bytes(protected: dict[int, Any]) -> bytes:
    # RFC 9052 §3: an empty protected header is a zero-length byte string, not an encoded empty map.
    return cbor.encode(protected) if protected else b""


def sign1(
    identity: Identity,
    payload: bytes,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    external_aad: bytes = b"",
) -> bytes:
    """The tagged COSE_Sign1 bytes for `payload` signed by `identity`."""
    prot = _protected_bytes({HDR_ALG: ALG_EDDSA} if protected is None else protected)
    signature = identity.sign(_sig_structure(prot, external_aad, payload))
    return cbor.encode(cbor2.CBORTag(TAG_SIGN1, [prot, unprotected or {}, payload, signature]))


@dataclass(frozen=True, slots=True)
class Sign1:
    """A decoded COSE_Sign1 (RFC 9052 §4.2); `protected_bytes` are kept as received, since they are signed."""

    protected_bytes: bytes
    protected: dict[int, Any]
    unprotected: dict[int, Any]
    payload: bytes
    signature: bytes

    def to_be_signed(self, external_aad: bytes = b"") -> bytes:
        return _sig_structure(self.protected_bytes, external_aad, self.payload)

    def verify(self, public_key: bytes, external_aad: bytes = b"") -> bool:
        return verify(public_key, self.signature, self.to_be_signed(external_aad))


def decode_sign1(data: bytes, *, max_size: int) -> Sign1:
    """Parse tagged COSE_Sign1 bytes strictly (signature not yet checked); insists on alg EdDSA."""
    item = cbor.decode(data, max_size=max_size, tags=frozenset({TAG_SIGN1}))
    if not isinstance(item, cbor2.CBORTag) or item.tag != TAG_SIGN1:
        raise LocalProtocolError("malformed", "not a tagged COSE_Sign1 message")
    parts = item.value
    if not isinstance(parts, tuple | list) or len(parts) != 4:
        raise LocalProtocolError("malformed", "COSE_Sign1 must be an array of four items")
    prot_bytes, unprotected, payload, signature = parts
    if not isinstance(prot_bytes, bytes) or not isinstance(unprotected, dict):
        raise LocalProtocolError("malformed", "COSE_Sign1 headers are malformed")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise LocalProtocolError("malformed", "COSE_Sign1 payload and signature must be byte strings")
    protected = cbor.decode(prot_bytes, max_size=256) if prot_bytes else {}
    if not isinstance(protected, dict) or protected.get(HDR_ALG) != ALG_EDDSA:
        raise LocalProtocolError("bad_signature", "COSE_Sign1 protected header must name alg EdDSA (-8)")
    if HDR_ALG in unprotected:
        raise LocalProtocolError("malformed", "alg must be in the protected header only")
    return Sign1(prot_bytes, protected, unprotected, payload, signature)
