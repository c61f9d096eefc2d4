"""The Noise Protocol Framework, revision 34, over X25519, ChaCha20-Poly1305 and SHA-256 or BLAKE2s.

Sans-IO: every key, ephemeral keys included, is passed in by the caller, so the engine is deterministic
and reproduces the published test vectors byte for byte. Supported: every one-way, interactive and
deferred pattern of §7 of the specification, each with any combination of `pskN` modifiers (§9).
Failures blamed on the peer raise RemoteProtocolError; misuse by our own caller raises LocalProtocolError.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import CLOSE_HANDSHAKE, LocalProtocolError, RemoteProtocolError

MAX_MESSAGE_LEN = 65535
DHLEN = 32
TAGLEN = 16
HASHLEN = 32
# 2^64-1 is reserved by §5.1 (it is the nonce used by REKEY), so the last usable nonce is one below it.
MAX_NONCE = 2**64 - 1

# §7.2-§7.7. Pre-messages are (initiator's, responder's); "->" lines are the initiator's messages.
_PATTERNS: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    "N": (("", "s"), ("e es",)),
    "K": (("s", "s"), ("e es ss",)),
    "X": (("", "s"), ("e es s ss",)),
    "NN": (("", ""), ("e", "e ee")),
    "NK": (("", "s"), ("e es", "e ee")),
    "NX": (("", ""), ("e", "e ee s es")),
    "XN": (("", ""), ("e", "e ee", "s se")),
    "XK": (("", "s"), ("e es", "e ee", "s se")),
    "XX": (("", ""), ("e", "e ee s es", "s se")),
    "KN": (("s", ""), ("e", "e ee se")),
    "KK": (("s", "s"), ("e es ss", "e ee se")),
    "KX": (("s", ""), ("e", "e ee se s es")),
    "IN": (("", ""), ("e s", "e ee se")),
    "IK": (("", "s"), ("e es s ss", "e ee se")),
    "IX": (("", ""), ("e s", "e ee se s es")),
    "NK1": (("", "s"), ("e", "e ee es")),
    "NX1": (("", ""), ("e", "e ee s", "es")),
    "X1N": (("", ""), ("e", "e ee", "s", "se")),
    "X1K": (("", "s"), ("e es", "e ee", "s", "se")),
    "XK1": (("", "s"), ("e", "e ee es", "s se")),
    "X1K1": (("", "s"), ("e", "e ee es", "s", "se")),
    "X1X": (("", ""), ("e", "e ee s es", "s", "se")),
    "XX1": (("", ""), ("e", "e ee s", "es s se")),
    "X1X1": (("", ""), ("e", "e ee s", "es s", "se")),
    "K1N": (("s", ""), ("e", "e ee", "se")),
    "K1K": (("s", "s"), ("e es", "e ee", "se")),
    "KK1": (("s", "s"), ("e", "e ee se es")),
    "K1K1": (("s", "s"), ("e", "e ee es", "se")),
    "K1X": (("s", ""), ("e", "e ee s es", "se")),
    "KX1": (("s", ""), ("e", "e ee se s", "es")),
    "K1X1": (("s", ""), ("e", "e ee s", "se es")),
    "I1N": (("", ""), ("e s", "e ee", "se")),
    "I1K": (("", "s"), ("e es s", "e ee", "se")),
    "IK1": (("", "s"), ("e s", "e ee se es")),
    "I1K1": (("", "s"), ("e s", "e ee es", "se")),
    "I1X": (("", ""), ("e s", "e ee s es", "se")),
    "IX1": (("", ""), ("e s", "e ee se s", "es")),
    "I1X1": (("", ""), ("e s", "e ee s", "se es")),
}
ONE_WAY = frozenset({"N", "K", "X"})
SUPPORTED_PATTERNS = frozenset(_PATTERNS)

_NAME_RE = re.compile(r"^Noise_([A-Z0-9]+)((?:psk[0-9])(?:\+psk[0-9])*)?_25519_ChaChaPoly_(SHA256|BLAKE2s)$")


@dataclass(frozen=True, kw_only=True)
class HashFunction:
    """Noise §4.3: HASH and HKDF for one hash."""

    name: str
    digestmod: str  # a hashlib name, so hmac can take its fast C path

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.digestmod, data).digest()

    def hkdf(self, chaining_key: bytes, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
        temp = hmac.digest(chaining_key, ikm, self.digestmod)
        out: list[bytes] = []
        prev = b""
        for i in range(1, outputs + 1):
            prev = hmac.digest(temp, prev + bytes([i]), self.digestmod)
            out.append(prev)
        return tuple(out)


HASHES = {
    "SHA256": HashFunction(name="SHA256", digestmod="sha256"),
    "BLAKE2s": HashFunction(name="BLAKE2s", digestmod="blake2s"),
}


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key for a 32-byte private key (clamping is part of X25519 itself)."""
    if len(private) != DHLEN:
        raise LocalProtocolError("bad_key", "an X25519 private key is 32 bytes")
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class _KeyPair:
    """Noise §4.1: an X25519 key pair and DH with it."""

    __slots__ = ("_private", "public")

    def __init__(self, private: bytes) -> None:
        if len(private) != DHLEN:
            raise LocalProtocolError("bad_key", "an X25519 private key is 32 bytes")
        self._private = X25519PrivateKey.from_private_bytes(private)
        self.public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def dh(self, public: bytes) -> bytes:
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            # cryptography refuses low-order points (all-zero shared secret): a peer trying to force a key.
            raise RemoteProtocolError(
                "handshake_failed", "the peer sent a degenerate X25519 public key", CLOSE_HANDSHAKE
            ) from None


def _nonce(n: int) -> bytes:
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


class CipherState:
    """§5.1. `n` is the implicit message counter: a replayed, dropped or reordered message fails to decrypt."""

    __slots__ = ("_aead", "k", "n")

    def __init__(self, k: bytes | None = None) -> None:
        self.k: bytes | None = None
        self._aead: ChaCha20Poly1305 | None = None
        self.n = 0
        if k is not None:
            self.initialize_key(k)

    def initialize_key(self, k: bytes | None) -> None:
        self.k = k
        self._aead = None if k is None else ChaCha20Poly1305(k)
        self.n = 0

    def has_key(self) -> bool:
        return self.k is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return bytes(plaintext)
        if self.n >= MAX_NONCE:
            raise LocalProtocolError("nonce_exhausted", "this cipher state has used every nonce")
        out = self._aead.encrypt(_nonce(self.n), bytes(plaintext), ad)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self._aead is None:
            return bytes(ciphertext)
        if self.n >= MAX_NONCE:
            raise RemoteProtocolError("nonce_exhausted", "the peer sent past the last nonce")
        try:
            out = self._aead.decrypt(_nonce(self.n), bytes(ciphertext), ad)
        except InvalidTag:
            # n stays put (§5.1): a forged message does not desynchronise the honest stream.
            raise RemoteProtocolError("undecryptable", "a message failed authentication") from None
        self.n += 1
        return out

    def rekey(self) -> None:
        if self._aead is None:
            raise LocalProtocolError("no_key", "cannot rekey a cipher state without a key")
        k = self._aead.encrypt(_nonce(MAX_NONCE), bytes(32), b"")[:32]
        n = self.n
        self.initialize_key(k)
        self.n = n


class SymmetricState:
    """§5.2."""

    def __init__(self, protocol_name: bytes, hash_fn: HashFunction) -> None:
        self.hash_fn = hash_fn
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = hash_fn.hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = self.hash_fn.hkdf(self.ck, ikm, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = self.hash_fn.hash(self.h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, temp_k = self.hash_fn.hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = self.hash_fn.hkdf(self.ck, b"", 2)
        return CipherState(k1), CipherState(k2)


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """A parsed protocol name: the message pattern with psk tokens already placed (§9.2)."""

    name: str
    pattern: str
    psk_positions: tuple[int, ...]
    hash_fn: HashFunction
    pre_messages: tuple[tuple[str, ...], tuple[str, ...]]
    messages: tuple[tuple[str, ...], ...]

    @property
    def one_way(self) -> bool:
        return self.pattern in ONE_WAY


def parse_protocol_name(name: str) -> Protocol:
    m = _NAME_RE.match(name)
    if m is None:
        raise LocalProtocolError("unsupported_protocol", f"{name!r} is not a Noise protocol name this engine runs")
    pattern, modifiers, hash_name = m.group(1), m.group(2), m.group(3)
    if pattern not in _PATTERNS:
        raise LocalProtocolError("unsupported_protocol", f"unknown handshake pattern {pattern!r}")
    (pre_i, pre_r), lines = _PATTERNS[pattern]
    messages = [line.split() for line in lines]
    positions: list[int] = []
    for modifier in (modifiers or "").split("+") if modifiers else []:
        n = int(modifier[3:])
        if n > len(messages) or n in positions:
            raise LocalProtocolError("unsupported_protocol", f"{modifier} does not fit pattern {pattern}")
        positions.append(n)
        if n == 0:
            messages[0].insert(0, "psk")
        else:
            messages[n - 1].append("psk")
    return Protocol(
        name=name,
        pattern=pattern,
        psk_positions=tuple(positions),
        hash_fn=HASHES[hash_name],
        pre_messages=(tuple(pre_i.split()), tuple(pre_r.split())),
        messages=tuple(tuple(tokens) for tokens in messages),
    )


class HandshakeState:
    """§5.3. `s` and `e` are private keys; `rs` and `re` the peer's public keys known in advance."""

    def __init__(
        self,
        protocol_name: str,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> None:
        self.protocol = parse_protocol_name(protocol_name)
        self.initiator = initiator
        self.s = _KeyPair(s) if s is not None else None
        self.e = _KeyPair(e) if e is not None else None
        self.rs = rs
        self.re = re
        self._psks = list(psks)
        if len(self._psks) != len(self.protocol.psk_positions) or any(len(p) != 32 for p in self._psks):
            raise LocalProtocolError(
                "bad_key",
                f"{protocol_name} needs exactly {len(self.protocol.psk_positions)} pre-shared keys of 32 bytes",
            )
        self.symmetric = SymmetricState(protocol_name.encode("ascii"), self.protocol.hash_fn)
        self.symmetric.mix_hash(prologue)
        pre_i, pre_r = self.protocol.pre_messages
        for owner_is_initiator, tokens in ((True, pre_i), (False, pre_r)):
            ours = owner_is_initiator == initiator
            for token in tokens:
                key = self._local(token) if ours else self._remote_pre(token)
                self.symmetric.mix_hash(key)
        self._index = 0
        self._result: tuple[CipherState, CipherState] | None = None

    def _local(self, token: str) -> bytes:
        pair = self.s if token == "s" else self.e
        if pair is None:
            raise LocalProtocolError("missing_key", f"the pattern needs our {token!r} key and none was given")
        return pair.public

    def _remote_pre(self, token: str) -> bytes:
        key = self.rs if token == "s" else self.re
        if key is None:
            raise LocalProtocolError("missing_key", f"the pattern needs the peer's {token!r} key in advance")
        return key

    @property
    def complete(self) -> bool:
        return self._result is not None

    @property
    def message_index(self) -> int:
        return self._index

    def is_our_turn(self) -> bool:
        # Even-indexed messages are the initiator's.
        return (self._index % 2 == 0) == self.initiator

    @property
    def handshake_hash(self) -> bytes:
        return self.symmetric.h

    def _dh(self, token: str) -> bytes:
        # The first letter names the initiator's key, the second the responder's.
        ours, theirs = (token[0], token[1]) if self.initiator else (token[1], token[0])
        pair = self.e if ours == "e" else self.s
        remote = self.re if theirs == "e" else self.rs
        if pair is None or remote is None:
            raise LocalProtocolError("missing_key", f"token {token!r} needs a key that is not available")
        return pair.dh(remote)

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.complete:
            raise LocalProtocolError("handshake_done", "the handshake is already complete")
        if not self.is_our_turn():
            raise LocalProtocolError("not_our_turn", "it is the peer's turn to send a handshake message")
        sym = self.symmetric
        out = bytearray()
        for token in self.protocol.messages[self._index]:
            if token == "e":
                if self.e is None:
                    raise LocalProtocolError("missing_key", "an ephemeral private key must be passed in")
                out += self.e.public
                sym.mix_hash(self.e.public)
                if self.protocol.psk_positions:
                    sym.mix_key(self.e.public)
            elif token == "s":
                out += sym.encrypt_and_hash(self._local("s"))
            elif token == "psk":
                sym.mix_key_and_hash(self._psks.pop(0))
            else:
                sym.mix_key(self._dh(token))
        out += sym.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE_LEN:
            raise LocalProtocolError("too_large", f"handshake message of {len(out)} bytes exceeds 65535")
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        if self.complete:
            raise LocalProtocolError("handshake_done", "the handshake is already complete")
        if self.is_our_turn():
            raise LocalProtocolError("not_their_turn", "it is our turn to send a handshake message")
        if len(message) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError("too_large", "handshake message exceeds 65535 bytes", CLOSE_HANDSHAKE)
        sym = self.symmetric
        view = bytes(message)
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            if len(view) - pos < n:
                raise RemoteProtocolError("handshake_failed", "handshake message is too short", CLOSE_HANDSHAKE)
            chunk = view[pos : pos + n]
            pos += n
            return chunk

        try:
            for token in self.protocol.messages[self._index]:
                if token == "e":
                    self.re = take(DHLEN)
                    sym.mix_hash(self.re)
                    if self.protocol.psk_positions:
                        sym.mix_key(self.re)
                elif token == "s":
                    self.rs = sym.decrypt_and_hash(take(DHLEN + TAGLEN if sym.cipher.has_key() else DHLEN))
                elif token == "psk":
                    sym.mix_key_and_hash(self._psks.pop(0))
                else:
                    sym.mix_key(self._dh(token))
            if sym.cipher.has_key() and len(view) - pos < TAGLEN:
                raise RemoteProtocolError("handshake_failed", "handshake message is too short", CLOSE_HANDSHAKE)
            payload = sym.decrypt_and_hash(view[pos:])
        except RemoteProtocolError as exc:
            if exc.code == "undecryptable":
                raise RemoteProtocolError(
                    "handshake_failed", "a handshake message failed authentication", CLOSE_HANDSHAKE
                ) from None
            raise
        self._advance()
        return payload

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(self.protocol.messages):
            self._result = self.symmetric.split()

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) cipher states for this side; one-way patterns only ever use the first of split()."""
        if self._result is None:
            raise LocalProtocolError("handshake_incomplete", "the handshake is not complete yet")
        c1, c2 = self._result
        return (c1, c2) if self.initiator else (c2, c1)
