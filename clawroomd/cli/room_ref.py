"""`--room` given as the start of a room id, as the product page writes them (`--room cr_8f2a` for room
cr_8f2a9c3d...): resolved against this daemon's rooms before a command runs, like a short git hash.

A full id (the 16 hex digits this daemon makes, or more) is used as given, with no extra call. A shorter
one is looked up with `room.list`: an exact match wins, else exactly one room must start with it.
"""

from __future__ import annotations

import dataclasses
import re

from clawroomd.client import ApiError, Client

from .exits import UsageError
from .options import Config

FULL_ID = len("cr_") + 16
_PREFIX = re.compile(r"cr_[0-9a-f]+")
NOT_RESOLVED = ("create", "join")  # join --room is a room the daemon does not know yet (join_room.py)


def resolve_room(cfg: Config) -> Config:
    room = cfg.room
    if not room or cfg.command in NOT_RESOLVED or len(room) >= FULL_ID or not _PREFIX.fullmatch(room):
        return cfg  # nothing to resolve; an id that is no id at all is refused by the daemon, with the rule
    with Client(cfg.socket, timeout=60.0) as c:
        ids = [r["room_id"] for r in c.call("room.list")["rooms"]]
    if room in ids:
        return cfg
    matches = [i for i in ids if i.startswith(room)]
    if len(matches) == 1:
        return dataclasses.replace(cfg, room=matches[0])
    if not matches:
        raise ApiError("unknown_room", f"no room on this daemon starts with {room}; `clawroom list` shows them")
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    raise UsageError(f"{room} is the start of {len(matches)} rooms ({shown}); give more of the id")
