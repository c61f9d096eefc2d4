"""Ed25519 identity keys and the peer id: a checksummed, grouped, read-aloud form of SHA-256(public key).

The peer id follows Syncthing's device-id layout: base32 of the 32-byte digest (52 characters), a Luhn
mod-32 check character after every 13, shown in eight dash-separated groups of seven. A typo in any one
character is caught by the check characters, and the id pins the key (256-bit digest, no truncation).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import LocalProtocolError

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_PEER_ID_RE = re.compile(r"^[A-Z2-7]{56}$")


def _luhn32(chars: str) -> str:
    factor, total = 1, 0
    for ch in chars:
        addend = factor * _B32.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _B32[(32 - total % 32) % 32]


@functools.lru_cache(maxsize=4096)  # every transcript line and status card names its authors
def peer_id_for(public_key: bytes) -> str:
    """The peer id of a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        raise LocalProtocolError("bad_key", "an Ed25519 public key is 32 bytes")
    digest = base64.b32encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")
    checked = "".join(digest[i : i + 13] + _luhn32(digest[i : i + 13]) for i in range(0, 52, 13))
    return "-".join(checked[i : i + 7] for i in range(0, 56, 7))


def parse_peer_id(text: str) -> str:
    """Normalise a typed or pasted peer id (any case, dashes or spaces) and verify its check characters."""
    raw = re.sub(r"[\s-]", "", text).upper()
    if not _PEER_ID_RE.match(raw):
        raise LocalProtocolError("bad_peer_id", f"{text!r} is not a peer id (56 base32 characters, dashes optional)")
    for i in range(0, 56, 14):
        if _luhn32(raw[i : i + 13]) != raw[i + 13]:
            raise LocalProtocolError("bad_peer_id", f"peer id {text!r} has a typo (check character mismatch)")
    return "-".join(raw[i : i + 7] for i in range(0, 56, 7))


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True iff `signature` is a valid Ed25519 signature by `public_key` over `message`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, eq=False, repr=False)
class Identity:
    """A signing identity. The core never draws randomness: callers pass a 32-byte seed from their RNG."""

    _private: Ed25519PrivateKey
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != 32:
            raise LocalProtocolError("bad_key", "an Ed25519 seed is 32 bytes")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.public_key)

    def seed(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:  # never print key material
        return f"Identity(peer_id={self.peer_id!r})"
