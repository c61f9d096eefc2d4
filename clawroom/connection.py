"""The blocking library: a Connection to one daemon and the Room objects it hands out.

Every call opens its own connection to the daemon's socket (cheap on a Unix socket), so a Room can be
kept, passed around and used from any thread that owns it; ``watch()`` and ``wait_turn()`` hold one
connection while they run. Nothing here imports trio.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from clawroomd import client

from ._params import CALL_TIMEOUT, RESULT_WAIT_MAX, RoomBase, api_params, send_params
from .errors import RoomClosed, translated


class Connection:
    """Where the daemon is: `socket`, else ``$CLAWROOM_SOCKET``, else the daemon's default path (the
    CLI's rule). Connects only when called: a missing daemon raises DaemonNotRunning at the first call."""

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, timeout: float = CALL_TIMEOUT) -> None:
        self.socket: Path = client.resolve_socket_path(socket)
        self.timeout = timeout

    def _client(self, timeout: float | None = None) -> client.Client:
        return client.Client(self.socket, timeout=self.timeout if timeout is None else timeout)

    def call(self, method: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        """One API call (SPEC §15.7), its errors raised as the library's."""
        with translated(), self._client(timeout) as c:
            return c.call(method, **params)

    def info(self) -> dict[str, Any]:
        return dict(self.call("daemon.info"))

    def create(
        self,
        topic: str,
        required_fields: Sequence[str | dict[str, str]],
        *,
        goal: str | None = None,
        max_turns: int | None = None,
        **more: Any,
    ) -> Room:
        """Create a room as its host. `more`: first, label, turn_timeout, deadline, answer_timeout,
        invite_ttl (seconds), advertise, context, agent_command, deliver_command, notify (argv lists or
        shell-quoted strings). The room's ``join_url`` goes to the other owner."""
        given = {"topic": topic, "required_fields": list(required_fields), "goal": goal, "max_turns": max_turns}
        view = self.call("room.create", **api_params({**given, **more}))
        return Room(self, view)

    def join(self, url: str, *, label: str | None = None, context: str | None = None, timeout: float = 30,
             **more: Any) -> Room:  # fmt: skip
        """Join a room by the join URL its host sent. `more`: agent_command, deliver_command, notify."""
        params = api_params({"join_url": url, "label": label, "context": context, "timeout_s": timeout, **more})
        view = self.call("room.join", timeout=timeout + 15, **params)
        return Room(self, view)

    def rooms(self) -> list[dict[str, Any]]:
        """This daemon's rooms (room.list), newest state of each."""
        return list(self.call("room.list")["rooms"])

    def room(self, room_id: str) -> Room:
        """A Room object for a room this daemon has (raises UnknownRoom if none)."""
        return Room(self, self.call("room.status", room_id=room_id))


class Room(RoomBase):
    """One room on this daemon, from this side. ``send``/``close`` are bound (``expect_seq``) to the seq
    of the last status, event or turn this object saw, so a move is never applied to a room that moved on
    since: that raises StaleState, and ``status()`` re-reads."""

    def __init__(self, conn: Connection, view: dict[str, Any]) -> None:
        super().__init__(view)
        self.conn = conn

    def _call(self, method: str, /, **params: Any) -> Any:
        return self.conn.call(method, room_id=self.id, **params)

    def _bound(self, expect_seq: int | None) -> int:
        if expect_seq is not None:
            return expect_seq
        if self.seq is None:
            self.status()
        assert self.seq is not None
        return self.seq

    def status(self) -> dict[str, Any]:
        """The status card (SPEC §15.7); what later moves are bound to."""
        self.view = dict(self._call("room.status"))
        self.seq = self.view["seq"]
        return self.view

    def transcript(self, after: int = -1) -> list[dict[str, Any]]:
        return list(self._call("room.transcript", after=after)["events"])

    def send(
        self,
        text: str | None = None,
        *,
        propose: dict[str, str] | None = None,
        accept: Sequence[str] | None = None,
        reject: Sequence[str] | None = None,
        refs: Sequence[str] | None = None,
        sid: str | None = None,
        expect_seq: int | None = None,
    ) -> dict[str, Any]:
        """Send a message and/or moves; returns the API's answer (``event``, or ``queued`` for a guest
        whose host is unreachable)."""
        params = send_params(text, propose, accept, reject, refs, sid)
        result = dict(self._call("room.send", **params, expect_seq=self._bound(expect_seq)))
        self._saw((result.get("event") or {}).get("seq"))
        return result

    def close(self, expect_seq: int | None = None) -> dict[str, Any]:
        """Propose closing with the outcome as it stands, or countersign the peer's proposal."""
        result = dict(self._call("room.close", expect_seq=self._bound(expect_seq)))
        self._saw((result.get("event") or {}).get("seq"))
        return result

    def cancel(self, reason: str | None = None) -> dict[str, Any]:
        return dict(self._call("room.cancel", **({} if reason is None else {"reason": reason})))

    def ask_owner(self, question: str, options: Sequence[str] | None = None, field: str | None = None,
                  value: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Ask this side's owner; sends and closes wait (PendingQuestion) until they answer."""
        params = api_params({"question": question, "options": None if options is None else list(options),
                             "field": field, "value": value})  # fmt: skip
        return dict(self._call("room.ask_owner", **params))

    def answer(self, approved: bool, text: str | None = None) -> dict[str, Any]:
        """The owner's side: answer this room's pending question."""
        return dict(self._call("room.answer", approved=approved, **({} if text is None else {"text": text})))

    def summary(self, text: str) -> dict[str, Any]:
        """The agent's own summary for its owner, at the top of summary.md; never sent."""
        return dict(self._call("room.summary", text=text))

    def result(self, wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """The final result. `wait`: block until the room is closed and its files written (at most
        `timeout` s, else NotReady); without it, NotReady while the room is open."""
        if not wait:
            return dict(self._call("room.result"))
        wait_s = timeout or RESULT_WAIT_MAX
        return dict(self.conn.call("room.result", room_id=self.id, wait_s=wait_s, timeout=wait_s + CALL_TIMEOUT))

    def watch(self, after: int = -1, *, silence: float | None = None) -> Iterator[dict[str, Any]]:
        """The room's notifications ({"method", "params"}) until ``room.closed`` (included): every event
        after seq `after` exactly once, ``room.status`` and ``room.your_turn`` as they come. Resume from
        the last event's ``params["event"]["seq"]``. TimeoutError after `silence` s without one."""
        with translated(), client.Client(self.conn.socket, timeout=self.conn.timeout) as c:
            for note in client.watch_events(c, self.id, after, silence=silence):
                params = note.get("params") or {}
                self._saw(params["event"]["seq"] if note["method"] == "room.event" else params.get("seq"))
                yield note

    def wait_turn(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until this side is awaited; returns the status card then. Raises RoomClosed if the room
        closes first, TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with translated(), client.Client(self.conn.socket, timeout=self.conn.timeout) as c:
            view = c.call("room.status", room_id=self.id)
            if not view["your_turn"] and view["result"] is None:
                c.call("room.watch", room_id=self.id, after=view["seq"])
                while not view["your_turn"] and view["result"] is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    for _note in c.notifications(timeout=left):
                        break  # any change: re-read the card below
                    else:
                        c.call("daemon.info")  # a lost connection raises here, else it was the timeout
                    view = c.call("room.status", room_id=self.id)
        self.view, self.seq = view, view["seq"]
        if view["your_turn"]:
            return dict(view)
        if view["result"] is not None:
            raise RoomClosed(f"room {self.id} closed ({view['result'].get('status')}) before this side's turn",
                             data={"room_id": self.id, "result": view["result"]})  # fmt: skip
        raise TimeoutError(f"not this side's turn in room {self.id} within {timeout:g} s")
