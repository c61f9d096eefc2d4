"""`clawroom join URL --room ID`: the room id the page prints next to a join URL must be the URL's room.
(Joining by room id alone, on the LAN, is `lan.join_by_room`.)"""

from __future__ import annotations

import re

from .exits import UsageError

_URL_ROOM = re.compile(r"join/(cr_[0-9a-f]+)")


def check_url_names_room(url: str, room: str) -> None:
    """`join URL --room ID`: the id must be the URL's room (or the start of it, as the page abbreviates)."""
    m = _URL_ROOM.search(url)
    room = room.strip()
    if m is None or not room:
        return  # a URL without a room id is refused by the daemon with the reason
    if not (room.startswith("cr_") and m.group(1).startswith(room)):
        raise UsageError(f"--room {room} does not match the join URL, which is for room {m.group(1)}")
