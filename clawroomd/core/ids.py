"""Room ids: the one rule for what a room id is (SPEC §5: `cr_` and 8-32 lowercase hex digits).

Every layer that takes a room id from outside (events, invites, join URLs, the store's folder names, the
CLI) checks it here, so none can accept an id the protocol refuses. The core draws no random numbers:
`new_room_id` takes the random part from its caller.
"""

from __future__ import annotations

import re

from .errors import LocalProtocolError

ROOM_ID_PREFIX = "cr_"
ROOM_ID_RE = re.compile(r"cr_[0-9a-f]{8,32}")  # use fullmatch (or is_room_id): `$` would let "\n" through
ROOM_ID_RULE = "cr_ and 8-32 lowercase hex digits"


def is_room_id(value: object) -> bool:
    return isinstance(value, str) and ROOM_ID_RE.fullmatch(value) is not None


def check_room_id(room_id: str) -> str:
    """`room_id` itself, or LocalProtocolError bad_room_id."""
    if not is_room_id(room_id):
        raise LocalProtocolError("bad_room_id", f"{room_id!r} is not a room id ({ROOM_ID_RULE})")
    return room_id


def new_room_id(token_hex: str) -> str:
    """The id of a new room whose random part is `token_hex` (e.g. `secrets.token_hex(8)`)."""
    room_id = ROOM_ID_PREFIX + token_hex
    if not is_room_id(room_id):
        raise ValueError(f"{token_hex!r} is not 8-32 lowercase hex digits")
    return room_id
