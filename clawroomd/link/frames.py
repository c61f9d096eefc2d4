"""The plaintext inside each Noise transport message: one CBOR array naming the frame's kind.

[0, {application map}]   data for the room layer
[1]                      heartbeat (keepalive; carries nothing)
[2]                      accepted: the responder authorised the initiator (always its first frame)
"""

from __future__ import annotations

from typing import Any

from ..core import cbor
from ..core.channel import MAX_PLAINTEXT
from ..core.errors import CLOSE_PROTOCOL, LocalProtocolError, RemoteProtocolError, as_remote

DATA = 0
HEARTBEAT = 1
ACCEPTED = 2

HEARTBEAT_FRAME = cbor.encode([HEARTBEAT])
ACCEPTED_FRAME = cbor.encode([ACCEPTED])


def encode_data(body: dict[str, Any]) -> bytes:
    if not isinstance(body, dict):
        raise LocalProtocolError("malformed", "application messages are maps (dicts)")
    out = cbor.encode([DATA, body])
    if len(out) > MAX_PLAINTEXT:
        raise LocalProtocolError("too_large", f"message of {len(out)} bytes exceeds the {MAX_PLAINTEXT}-byte frame")
    return out


def decode(plaintext: bytes) -> tuple[int, dict[str, Any] | None]:
    try:
        frame = cbor.decode(plaintext, max_size=MAX_PLAINTEXT)
    except LocalProtocolError as exc:
        raise as_remote(exc) from None
    if isinstance(frame, list) and frame and type(frame[0]) is int:  # not bool: False == 0
        match frame:
            case [0, dict() as body]:
                return DATA, body
            case [1]:
                return HEARTBEAT, None
            case [2]:
                return ACCEPTED, None
    raise RemoteProtocolError("malformed", "unknown link frame", CLOSE_PROTOCOL)
