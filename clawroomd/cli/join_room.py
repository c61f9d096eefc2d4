"""`clawroom join --room ID --role guest`: joining by room id alone, as the product page prints it.

A room id names the room but neither the host nor the invite secret, so the guest's daemon must find the
host's invite on the LAN. Until LAN discovery lands, `join_by_room_id` is the one place that says so and
names the way that works (the join URL); the LAN work replaces this function and nothing else.
"""

from __future__ import annotations

import re

from clawroomd.core.ids import ROOM_ID_RULE

from .exits import UsageError
from .options import Config

_URL_ROOM = re.compile(r"join/(cr_[0-9a-f]+)")


def join_by_room_id(cfg: Config) -> int:
    """Join the room `cfg.room` as the guest, found by its id alone (exit code)."""
    room = cfg.room.strip()
    what = f"{room} is not a room id ({ROOM_ID_RULE}); " if not re.fullmatch(r"cr_[0-9a-f]+", room) else ""
    raise UsageError(
        f"{what}joining by room id needs the host's daemon found on the LAN, which this version cannot do yet. "
        "Ask the host for the join URL their `clawroom create` printed and run: "
        "clawroom join 'clawroom://join/cr_...?peer=...&s=...' --role guest "
        "(or: clawroom join --join-url URL --role guest)"
    )


def check_url_names_room(url: str, room: str) -> None:
    """`join URL --room ID`: the id must be the URL's room (or the start of it, as the page abbreviates)."""
    m = _URL_ROOM.search(url)
    room = room.strip()
    if m is None or not room:
        return  # a URL without a room id is refused by the daemon with the reason
    if not (room.startswith("cr_") and m.group(1).startswith(room)):
        raise UsageError(f"--room {room} does not match the join URL, which is for room {m.group(1)}")
