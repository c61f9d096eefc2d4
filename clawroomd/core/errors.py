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
    """The peer sent something the protocol forbids; `close_code` is what to answer it with."""

    def __init__(self, code: str, message: str, close_code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(code, message)
        self.close_code = close_code


_CLOSE_BY_CODE = {
    "bad_signature": CLOSE_BAD_SIGNATURE,
    "wrong_author": CLOSE_BAD_SIGNATURE,
    "too_large": CLOSE_TOO_LARGE,
    "malformed": CLOSE_MALFORMED,
}


def as_remote(err: LocalProtocolError) -> RemoteProtocolError:
    """The same violation, now blamed on the peer (used when validating what the peer sent)."""
    return RemoteProtocolError(err.code, err.message, _CLOSE_BY_CODE.get(err.code, CLOSE_PROTOCOL))
