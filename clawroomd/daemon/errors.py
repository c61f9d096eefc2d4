"""Stable error codes of the local API: the one table mapping code strings to JSON-RPC integers.

Every error a client sees is a JSON-RPC 2.0 error object::

    {"code": <int from ERROR_CODES>, "message": <a sentence a person can act on>,
     "data": {"error": <stable code string>, ...extra fields}}

Clients should branch on ``data.error`` (the string); the integer exists for plain JSON-RPC tooling.
The five JSON-RPC protocol errors keep their standard integers; application errors use 1001 and up.
Codes are never renumbered or reused; add new ones at the end of their group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

ERROR_CODES: dict[str, int] = {
    # JSON-RPC 2.0 protocol errors (standard integers)
    "parse_error": -32700,
    "invalid_request": -32600,
    "method_not_found": -32601,
    "invalid_params": -32602,
    "internal": -32603,
    # application errors
    "not_your_turn": 1001,
    "room_closed": 1002,
    "unknown_room": 1003,
    "limit_exceeded": 1004,
    "turn_limit": 1005,
    "unknown_field": 1006,
    "bad_value": 1007,
    "consulting": 1008,
    "peer_unreachable": 1009,
    "not_ready": 1010,
    "bad_join_url": 1011,
    "invite_rejected": 1012,
    "leak_blocked": 1013,
    "conflict": 1014,
    "permission_denied": 1015,
    "too_slow": 1016,
    "stale_state": 1017,
    "storage_failed": 1018,
    "bad_context": 1019,
    "no_context": 1020,
    "pending_question": 1021,
    "no_question": 1022,
    "needs_owner_approval": 1023,
    "bad_provenance": 1024,
    "join_refused": 1025,
    "no_request": 1026,
}

# WebSocket close code a daemon sends when it drops a peer link because it could not save what the link
# carried (disk full, I/O error): the standard 1011 "unexpected condition". The peer redials with backoff.
CLOSE_STORAGE = 1011

# The JSON-RPC integer per code, for the rare error that must use a protocol integer with a more
# specific string (an oversized request line is an invalid request whose data.error is limit_exceeded).
PARSE_ERROR = ERROR_CODES["parse_error"]
INVALID_REQUEST = ERROR_CODES["invalid_request"]
METHOD_NOT_FOUND = ERROR_CODES["method_not_found"]
INVALID_PARAMS = ERROR_CODES["invalid_params"]
INTERNAL_ERROR = ERROR_CODES["internal"]


class ApiError(Exception):
    """An error to report to a local-API caller.

    ``code`` is a key of ERROR_CODES (a typo raises ValueError at once rather than reaching a client),
    ``message`` a sentence a person can act on, ``data`` extra JSON-serialisable fields for scripts.
    ``rpc_code`` overrides the integer (used only for protocol-level errors, see above).
    """

    def __init__(
        self, code: str, message: str, data: dict[str, Any] | None = None, *, rpc_code: int | None = None
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown local-API error code {code!r}: add it to ERROR_CODES")
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = dict(data) if data else {}
        self.rpc_code = ERROR_CODES[code] if rpc_code is None else rpc_code

    def to_json(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        return {"code": self.rpc_code, "message": self.message, "data": {**self.data, "error": self.code}}

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.message!r})"


# Core codes an agent can hit through the local API, mapped to the API's stable codes.
_API_CODE = {
    "not_your_turn": "not_your_turn",
    "turn_limit": "turn_limit",
    "room_closed": "room_closed",
    "unknown_field": "unknown_field",
    "consulting": "consulting",
    "too_large": "limit_exceeded",
    "consult_limit": "limit_exceeded",
    "event_limit": "limit_exceeded",
}


def api_error(protocol_code: str, message: str) -> ApiError:
    """A core refusal, ours or the host's, as the local API's stable code (SPEC.md §15.7)."""
    code = _API_CODE.get(
        protocol_code,
        "conflict"
        if protocol_code in ("illegal_event", "outcome_mismatch", "no_such_proposal", "not_consulting")
        else "bad_value",
    )
    return ApiError(code, message, {"protocol_code": protocol_code})


def stale_state(expected: int, seq: int, *, host_ahead: bool = False) -> ApiError:
    """A move computed on the room as of seq `expected` that no longer describes it (DESIGN §4: replies
    bind to what they saw). Nothing was sent; the caller re-reads the room and decides again."""
    if host_ahead:
        what = f"the host holds events after seq {expected} that this daemon had not received yet"
    else:
        what = f"the room moved on from seq {expected} to {seq}"
    return ApiError(
        "stale_state",
        f"{what}; the move was not added to the room: re-read it and decide again",
        {"expect_seq": expected, "seq": seq},
    )


def check_seq(expected: int | None, seq: int) -> None:
    """Refuse a move bound to seq `expected` (None: unbound) when the room is now at `seq`."""
    if expected is not None and expected != seq:
        raise stale_state(expected, seq)


@contextlib.contextmanager
def core_refusal_is_bad_value() -> Iterator[None]:
    """An event or move that refuses to be built is the caller's bad value, said in the core's words."""
    from ..core.errors import LocalProtocolError

    try:
        yield
    except LocalProtocolError as err:
        raise ApiError("bad_value", err.message, {"protocol_code": err.code}) from None
