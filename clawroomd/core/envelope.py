"""A signed room event: canonical CBOR payload inside a COSE_Sign1 by the author's Ed25519 key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from . import cbor, cose
from .errors import LocalProtocolError
from .events import Body, Header, body_from_wire, body_to_json, body_to_wire, header_from_wire, header_to_wire
from .identity import Identity, peer_id_for

# An event must fit one Noise transport message (65535 bytes) with room for link framing.
MAX_EVENT_BYTES = 60_000
ZERO_HASH = bytes(32)


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedEvent:
    """An event as signed: its decoded header and body, and the exact bytes that were signed."""

    header: Header
    body: Body
    envelope: bytes  # the exact COSE_Sign1 bytes: what is stored, sent, and hashed
    hash: bytes  # SHA-256(envelope): the next event's `prev`

    @property
    def kind(self) -> str:
        return self.body.kind

    def to_json(self) -> dict[str, Any]:
        """The transcript line / local API view of this event."""
        h = self.header
        return {
            "room": h.room,
            "seq": h.seq,
            "kind": self.kind,
            "author": h.author,
            "author_id": peer_id_for(h.key),
            "ts": h.ts,
            "sid": h.sid,
            "hash": self.hash.hex(),
            "prev": h.prev.hex(),
            "body": body_to_json(self.body),
        }


def seal(identity: Identity, header: Header, body: Body) -> SignedEvent:
    if header.key != identity.public_key:
        raise LocalProtocolError("wrong_author", "the header key must be the signer's own key")
    payload = cbor.encode({**header_to_wire(header, body.kind), "body": body_to_wire(body)})
    envelope = cose.sign1(identity, payload)
    if len(envelope) > MAX_EVENT_BYTES:
        raise LocalProtocolError("too_large", f"event is {len(envelope)} bytes; the limit is {MAX_EVENT_BYTES}")
    return SignedEvent(header=header, body=body, envelope=envelope, hash=hashlib.sha256(envelope).digest())


def open_envelope(data: bytes, *, verify: bool = True) -> SignedEvent:
    """Decode and (unless the caller already holds these exact bytes) verify a signed event.

    Raises LocalProtocolError; code paths handling a peer's bytes re-raise it with `as_remote`.
    """
    msg = cose.decode_sign1(data, max_size=MAX_EVENT_BYTES)
    if msg.unprotected:
        raise LocalProtocolError("malformed", "room events carry no unprotected headers")
    header, kind, raw_body = header_from_wire(cbor.decode(msg.payload, max_size=MAX_EVENT_BYTES))
    body = body_from_wire(kind, raw_body)
    if verify and not msg.verify(header.key):
        raise LocalProtocolError("bad_signature", f"signature on {kind} #{header.seq} does not verify")
    return SignedEvent(header=header, body=body, envelope=bytes(data), hash=hashlib.sha256(data).digest())
