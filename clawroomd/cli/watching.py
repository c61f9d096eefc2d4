"""Following a room from the CLI: `room.watch` notifications as an iterator that never skips an event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clawroomd.client import Client


def watch_events(c: Client, room_id: str, after: int = -1, *, silence: float | None = None) -> Iterator[dict[str, Any]]:
    """Subscribe with room.watch and yield its notifications until room.closed (included).

    Before room.closed it yields, as room.event notifications of the same shape, any events the stream
    skipped: the daemon can find the room closed while it is still sending the events before it, and then
    sends room.closed without the rest. A transcript read fills the gap, so no event is ever missed.
    Raises TimeoutError after `silence` seconds without a notification (None: wait for ever).
    """
    c.call("room.watch", room_id=room_id, after=after)
    seq = after
    for note in c.notifications(timeout=silence):
        params = note.get("params") or {}
        if note["method"] == "room.event":
            if params["event"]["seq"] <= seq:
                continue
            seq = params["event"]["seq"]
        elif note["method"] == "room.closed":
            for event in c.call("room.transcript", room_id=room_id, after=seq)["events"]:
                seq = event["seq"]
                yield {"method": "room.event", "params": {"room_id": room_id, "event": event}}
            yield note
            return
        yield note
    c.call("daemon.info")  # notifications() ended: a lost connection raises here, else it was the silence
    raise TimeoutError(f"nothing happened in room {room_id} for {silence:g} s")
