"""Errors of the sans-IO core, split by whose fault they are (the h11 convention)."""

from __future__ import annotations

# WebSocket close codes we send back for a peer's violation (4000-4999 is the private-use range).
CLOSE_PROTOCOL = 4000  # the peer broke the room protocol
CLOSE_BAD_SIGNATURE = 4001  # a signature or identity did not verify
CLOSE_TOO_LARGE = 4002  # a frame or event over the size limits
CLOSE_MALFORMED = 4003  # bytes that do not decode
CLOSE_HANDSHAKE = 4004  # the secure-channel handshake failed
CLOSE_INVITE = 4005  # wrong, reused or expired invite
CLOSE_TIMEOUT = 4006  # the peer stopped answering keepalives
CLOSE_WRONG_PEER = 4007  # the peer proved an identity other than the one expected (or one not allowed)
CLOSE_UNDECRYPTABLE = 4008  # a transport message failed authentication (forged, replayed or reordered)


class ProtocolError(Exception):
    """Base: `code` is a stable machine-readable string, `str(err)` a sentence a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class LocalProtocolError(ProtocolError):
    """Our own caller asked for something the protocol forbids; nothing was sent or changed."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; `close_code` is what to answer it with (by default
    the one mapping below, e.g. 4001 for `wrong_author`; 4000 for codes it does not name)."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(code, message)
        self.close_code = _CLOSE_BY_CODE.get(code, CLOSE_PROTOCOL) if close_code is None else close_code


_CLOSE_BY_CODE = {
    "bad_signature": CLOSE_BAD_SIGNATURE,
    "wrong_author": CLOSE_BAD_SIGNATURE,
    "too_large": CLOSE_TOO_LARGE,
    "malformed": CLOSE_MALFORMED,
}


def as_remote(err: LocalProtocolError) -> RemoteProtocolError:
    """The same violation, now blamed on the peer (used when validating what the peer sent)."""
    return RemoteProtocolError(err.code, err.message)


# Every code the room protocol (events, envelope, rules) can raise, with what it means. SPEC.md's table is
# generated from this, and a test fails if the core raises a code that is missing here.
ROOM_ERROR_CODES: dict[str, str] = {
    "malformed": "bytes that are not strict canonical CBOR / COSE_Sign1 of a known shape",
    "too_large": "an event, text or value over its size limit",
    "unsupported_version": "an event whose protocol version `v` we do not speak",
    "bad_value": "a field with the wrong type or outside its allowed range",
    "bad_key": "key material of the wrong length",
    "bad_peer_id": "a peer id with a typo or of the wrong form",
    "bad_signature": "the COSE_Sign1 signature does not verify under the key in the event",
    "wrong_author": "signed by a key other than the one this role holds in the room",
    "wrong_room": "the event names another room",
    "bad_sequence": "the sequence number is not the next one (replay, gap or stale submission)",
    "bad_chain": "`prev` is not the hash of the current head (or the host rewrote history)",
    "illegal_event": "the transition table does not allow this author to send this kind in this phase",
    "room_closed": "the room is closed; nothing more is accepted",
    "not_your_turn": "a message from the side whose turn it is not",
    "turn_limit": "a message after `max_turns` messages",
    "consulting": "the author is consulting its owner (or already is) and cannot act",
    "not_consulting": "consult_ended without a consultation under way",
    "unknown_field": "a move on a field that the room did not declare",
    "no_such_proposal": "accept or reject without a matching standing proposal from the peer",
    "outcome_mismatch": "a close whose outcome, status or digest does not match the transcript",
    "bad_timestamp": "`ts` more than the allowed skew ahead of the receiver's clock or behind the previous event's",
    "consult_limit": "consult_started by a side that has already consulted its owner the most times allowed this turn",
    "event_limit": "consult_started when the room's event budget has nothing left beyond the turns and the close",
}
