"""Our secure channel: Noise_XX_25519_ChaChaPoly_SHA256 with each side's Ed25519 identity bound to its static key.

    -> e                                       payload: empty
    <- e, ee, s, es                            payload: {identity, signature}
    -> s, se                                   payload: {identity, signature, ? invite}

The Noise static key is separate from the identity key; the identity vouches for it with a signature over
STATIC_KEY_PREFIX || static public key (libp2p binds identities the same way). Because each payload is
encrypted under keys that already mix in the sender's static key, a signature copied from another session
does not verify against the static key actually used here. The initiator (guest) sends its invite only in
message 3, after it has checked message 2 against the peer id it pinned. Sans-IO: keys and ephemeral
keys are passed in; a channel that raised once is dead and refuses further use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from . import cbor
from .errors import (
    CLOSE_BAD_SIGNATURE,
    CLOSE_HANDSHAKE,
    CLOSE_MALFORMED,
    CLOSE_TOO_LARGE,
    CLOSE_UNDECRYPTABLE,
    CLOSE_WRONG_PEER,
    LocalProtocolError,
    RemoteProtocolError,
)
from .identity import Identity, parse_peer_id, peer_id_for, verify
from .ids import check_room_id
from .invites import Invite, JoinRequest, Presented, check_secret
from .noise import MAX_MESSAGE_LEN, TAGLEN, CipherState, HandshakeState, x25519_public

PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE = b"clawroom/1"
STATIC_KEY_PREFIX = b"clawroom-noise-static-key-v1:"
SAS_PREFIX = b"clawroom-sas-v1:"
SAS_DIGITS = 6
MAX_PLAINTEXT = MAX_MESSAGE_LEN - TAGLEN
# Both sides rekey each direction after every REKEY_INTERVAL messages (Noise §11.3 REKEY), so no key
# protects more than 2^16 messages; a direction is closed at MESSAGE_LIMIT, far below the 2^64 nonces.
REKEY_INTERVAL = 2**16
MESSAGE_LIMIT = 2**48

_PAYLOAD_KEYS = frozenset({"identity", "signature"})
_INVITE_KEYS = frozenset({"room", "secret"})
_REQUEST_KEYS = frozenset({"room"})


def _hs_error(code: str, message: str, close_code: int) -> RemoteProtocolError:
    return RemoteProtocolError(code, message, close_code)


@dataclass(frozen=True, kw_only=True)
class PeerProof:
    """What the peer's handshake payload proved."""

    public_key: bytes
    peer_id: str
    invite: Presented | None


def encode_payload(identity: Identity, static_public: bytes, invite: Presented | None) -> bytes:
    body: dict[str, Any] = {
        "identity": identity.public_key,
        "signature": identity.sign(STATIC_KEY_PREFIX + static_public),
    }
    if isinstance(invite, Invite):
        body["invite"] = {"room": invite.room_id, "secret": invite.secret}
    elif isinstance(invite, JoinRequest):
        body["request"] = {"room": invite.room_id}
    return cbor.encode(body)


def decode_payload(data: bytes, remote_static: bytes, *, invite_allowed: bool) -> PeerProof:
    """Check a peer's handshake payload against the Noise static key it just proved it holds."""
    if not data:
        raise _hs_error("missing_identity", "the peer's handshake carries no identity", CLOSE_BAD_SIGNATURE)
    try:
        body = cbor.decode(data, max_size=MAX_PLAINTEXT)
    except LocalProtocolError as exc:
        raise _hs_error("malformed", f"handshake payload: {exc.message}", CLOSE_MALFORMED) from None
    if not isinstance(body, dict):
        raise _hs_error("malformed", "handshake payload is not a CBOR map", CLOSE_MALFORMED)
    allowed = _PAYLOAD_KEYS | {"invite", "request"} if invite_allowed else _PAYLOAD_KEYS
    extra = set(body) - allowed
    if extra:
        raise _hs_error(
            "malformed", f"handshake payload has unexpected keys {sorted(map(str, extra))}", CLOSE_MALFORMED
        )
    key = body.get("identity")
    sig = body.get("signature")
    if not key or not sig:
        missing = "identity key" if not key else "identity signature"
        raise _hs_error("missing_identity", f"the peer's handshake has no {missing}", CLOSE_BAD_SIGNATURE)
    if not isinstance(key, bytes) or len(key) != 32 or not isinstance(sig, bytes):
        raise _hs_error("malformed", "identity is a 32-byte and signature a byte string", CLOSE_MALFORMED)
    if not verify(key, sig, STATIC_KEY_PREFIX + remote_static):
        raise _hs_error(
            "bad_identity_signature",
            "the peer's identity signature does not cover its Noise static key",
            CLOSE_BAD_SIGNATURE,
        )
    invite: Presented | None = None
    if "invite" in body and "request" in body:
        raise _hs_error("malformed", "a handshake carries an invite or a join request, not both", CLOSE_MALFORMED)
    if "invite" in body:
        invite = _decode_invite(body["invite"])
    elif "request" in body:
        invite = _decode_request(body["request"])
    return PeerProof(public_key=key, peer_id=peer_id_for(key), invite=invite)


def _decode_invite(raw: Any) -> Invite:
    if not isinstance(raw, dict) or set(raw) != _INVITE_KEYS:
        raise _hs_error("malformed", "invite is a map of exactly room and secret", CLOSE_MALFORMED)
    try:
        room = check_room_id(raw["room"])
        secret = check_secret(raw["secret"])
    except LocalProtocolError as exc:
        raise _hs_error("malformed", f"invite: {exc.message}", CLOSE_MALFORMED) from None
    return Invite(room_id=room, secret=secret)


def _decode_request(raw: Any) -> JoinRequest:
    if not isinstance(raw, dict) or set(raw) != _REQUEST_KEYS:
        raise _hs_error("malformed", "a join request is a map of exactly room", CLOSE_MALFORMED)
    try:
        return JoinRequest(room_id=check_room_id(raw["room"]))
    except LocalProtocolError as exc:
        raise _hs_error("malformed", f"join request: {exc.message}", CLOSE_MALFORMED) from None


class Transport:
    """Post-handshake encryption for one connection. Messages must be decrypted in the order sent."""

    def __init__(self, send: CipherState, recv: CipherState, *, rekey_interval: int = REKEY_INTERVAL) -> None:
        self._send = send
        self._recv = recv
        self._rekey_interval = rekey_interval
        self._dead = False

    @property
    def sent(self) -> int:
        return self._send.n

    @property
    def received(self) -> int:
        return self._recv.n

    def encrypt(self, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_PLAINTEXT:
            raise LocalProtocolError("too_large", f"{len(plaintext)} bytes exceed the {MAX_PLAINTEXT}-byte limit")
        if self._send.n >= MESSAGE_LIMIT:
            raise LocalProtocolError("nonce_exhausted", "this connection has sent its last message; reconnect")
        out = self._send.encrypt_with_ad(b"", plaintext)
        if self._send.n % self._rekey_interval == 0:
            self._send.rekey()
        return out

    def decrypt(self, ciphertext: bytes) -> bytes:
        if self._dead:
            raise RemoteProtocolError("undecryptable", "the channel already failed", CLOSE_UNDECRYPTABLE)
        if len(ciphertext) > MAX_MESSAGE_LEN:
            self._dead = True
            raise RemoteProtocolError("too_large", "a message exceeds 65535 bytes", CLOSE_TOO_LARGE)
        if self._recv.n >= MESSAGE_LIMIT:
            self._dead = True
            raise RemoteProtocolError("nonce_exhausted", "the peer sent past the per-connection limit")
        try:
            if len(ciphertext) < TAGLEN:
                raise RemoteProtocolError("undecryptable", "message shorter than its tag")
            out = self._recv.decrypt_with_ad(b"", ciphertext)
        except RemoteProtocolError:
            self._dead = True
            raise RemoteProtocolError(
                "undecryptable",
                "a message failed authentication (forged, replayed, reordered or corrupted)",
                CLOSE_UNDECRYPTABLE,
            ) from None
        if self._recv.n % self._rekey_interval == 0:
            self._recv.rekey()
        return out


class SecureChannel:
    """One side of the identity-bound XX handshake; `transport()` once `complete`."""

    def __init__(
        self,
        *,
        initiator: bool,
        identity: Identity,
        static_private: bytes,
        ephemeral_private: bytes,
        expected_peer_id: str | None = None,
        invite: Presented | None = None,
        rekey_interval: int = REKEY_INTERVAL,
    ) -> None:
        if invite is not None and not initiator:
            raise LocalProtocolError("invite_not_allowed", "only the initiator (guest) presents an invite")
        self.initiator = initiator
        self._identity = identity
        self._static_public = x25519_public(static_private)
        self._expected = parse_peer_id(expected_peer_id) if expected_peer_id is not None else None
        self._invite = invite
        self._rekey_interval = rekey_interval
        self._hs = HandshakeState(
            PROTOCOL_NAME, initiator=initiator, prologue=PROLOGUE, s=static_private, e=ephemeral_private
        )
        self._proof: PeerProof | None = None
        self._failed = False
        self._transport: Transport | None = None

    # -- handshake ---------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._hs.complete and not self._failed

    def our_turn(self) -> bool:
        return not self._hs.complete and self._hs.is_our_turn()

    def _check_alive(self) -> None:
        if self._failed:
            raise LocalProtocolError("channel_failed", "this handshake already failed; start a new connection")

    def write_message(self) -> bytes:
        self._check_alive()
        index = self._hs.message_index
        payload = b"" if index == 0 else encode_payload(self._identity, self._static_public, self._invite)
        return self._hs.write_message(payload)

    def read_message(self, data: bytes) -> None:
        self._check_alive()
        try:
            self._read(data)
        except RemoteProtocolError:
            self._failed = True
            raise

    def _read(self, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_LEN:
            raise _hs_error("too_large", "handshake message exceeds 65535 bytes", CLOSE_TOO_LARGE)
        index = self._hs.message_index
        payload = self._hs.read_message(data)
        if index == 0:
            if payload:
                raise _hs_error("handshake_failed", "message 1 must not carry data", CLOSE_HANDSHAKE)
            return
        remote_static = self._hs.rs
        assert remote_static is not None  # XX: the peer's static key arrives with its first payload
        proof = decode_payload(payload, remote_static, invite_allowed=not self.initiator)
        if self._expected is not None and proof.peer_id != self._expected:
            raise _hs_error(
                "wrong_peer", f"the peer is {proof.peer_id}, not the expected {self._expected}", CLOSE_WRONG_PEER
            )
        self._proof = proof

    # -- results -----------------------------------------------------------------------------------

    def _require_complete(self) -> PeerProof:
        if not self.complete or self._proof is None:
            raise LocalProtocolError("handshake_incomplete", "the handshake has not completed")
        return self._proof

    @property
    def peer_public_key(self) -> bytes:
        return self._require_complete().public_key

    @property
    def peer_peer_id(self) -> str:
        return self._require_complete().peer_id

    @property
    def peer_invite(self) -> Presented | None:
        return self._require_complete().invite

    @property
    def handshake_hash(self) -> bytes:
        self._require_complete()
        return self._hs.handshake_hash

    @property
    def sas(self) -> str:
        return sas_for(self.handshake_hash)

    def transport(self) -> Transport:
        self._require_complete()
        if self._transport is None:
            send, recv = self._hs.split()
            self._transport = Transport(send, recv, rekey_interval=self._rekey_interval)
        return self._transport


def sas_for(handshake_hash: bytes) -> str:
    """Six decimal digits both owners can read to each other (64 bits reduced mod 10^6: bias < 2^-40)."""
    digest = hashlib.sha256(SAS_PREFIX + handshake_hash).digest()
    return str(int.from_bytes(digest[:8], "big") % 10**SAS_DIGITS).zfill(SAS_DIGITS)
