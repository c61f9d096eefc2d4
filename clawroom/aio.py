"""The library for trio: the same API as ``clawroom`` with awaitable calls, over clawroomd.client's
AsyncClient.

    room = await clawroom.aio.create(topic=..., required_fields=[...])
    async for note in room.watch():
        ...

Each call opens its own connection and closes it before returning, so no connection (nor its reader
task) outlives a call or spans a ``yield`` of ``watch()``: breaking out of ``async for`` is always safe.
"""

from __future__ import annotations

import collections
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import trio

from clawroomd import client

from ._params import CALL_TIMEOUT, RESULT_WAIT_MAX, RoomBase, api_params, send_params
from .errors import RoomClosed, translated

__all__ = ["AsyncConnection", "AsyncRoom", "RoomWatch", "connect", "create", "join", "room", "rooms"]


class AsyncConnection:
    """As clawroom.Connection, for trio."""

    def __init__(self, socket: str | os.PathLike[str] | None = None, *, timeout: float = CALL_TIMEOUT) -> None:
        self.socket: Path = client.resolve_socket_path(socket)
        self.timeout = timeout

    async def call(self, method: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        with translated(), trio.fail_after(self.timeout if timeout is None else timeout):
            async with client.AsyncClient(self.socket) as c:
                return await c.call(method, **params)

    async def info(self) -> dict[str, Any]:
        return dict(await self.call("daemon.info"))

    async def create(self, topic: str, required_fields: Sequence[str | dict[str, str]], *, goal: str | None = None,
                     max_turns: int | None = None, **more: Any) -> AsyncRoom:  # fmt: skip
        given = {"topic": topic, "required_fields": list(required_fields), "goal": goal, "max_turns": max_turns}
        return AsyncRoom(self, await self.call("room.create", **api_params({**given, **more})))

    async def join(self, url: str, *, label: str | None = None, context: str | None = None, timeout: float = 30,
                   **more: Any) -> AsyncRoom:  # fmt: skip
        params = api_params({"join_url": url, "label": label, "context": context, "timeout_s": timeout, **more})
        return AsyncRoom(self, await self.call("room.join", timeout=timeout + 15, **params))

    async def rooms(self) -> list[dict[str, Any]]:
        return list((await self.call("room.list"))["rooms"])

    async def room(self, room_id: str) -> AsyncRoom:
        return AsyncRoom(self, await self.call("room.status", room_id=room_id))


class AsyncRoom(RoomBase):
    """As clawroom.Room, for trio: moves bound to the last seq seen, the same errors."""

    kind = "aio.AsyncRoom"

    def __init__(self, conn: AsyncConnection, view: dict[str, Any]) -> None:
        super().__init__(view)
        self.conn = conn

    async def _call(self, method: str, /, **params: Any) -> Any:
        return await self.conn.call(method, room_id=self.id, **params)

    async def _bound(self, expect_seq: int | None) -> int:
        if expect_seq is not None:
            return expect_seq
        if self.seq is None:
            await self.status()
        assert self.seq is not None
        return self.seq

    async def status(self) -> dict[str, Any]:
        self.view = dict(await self._call("room.status"))
        self.seq = self.view["seq"]
        return self.view

    async def transcript(self, after: int = -1) -> list[dict[str, Any]]:
        return list((await self._call("room.transcript", after=after))["events"])

    async def send(self, text: str | None = None, *, propose: dict[str, str] | None = None,
                   accept: Sequence[str] | None = None, reject: Sequence[str] | None = None,
                   refs: Sequence[str] | None = None, sid: str | None = None,
                   expect_seq: int | None = None) -> dict[str, Any]:  # fmt: skip
        params = send_params(text, propose, accept, reject, refs, sid)
        result = dict(await self._call("room.send", **params, expect_seq=await self._bound(expect_seq)))
        self._saw((result.get("event") or {}).get("seq"))
        return result

    async def close(self, expect_seq: int | None = None) -> dict[str, Any]:
        result = dict(await self._call("room.close", expect_seq=await self._bound(expect_seq)))
        self._saw((result.get("event") or {}).get("seq"))
        return result

    async def cancel(self, reason: str | None = None) -> dict[str, Any]:
        return dict(await self._call("room.cancel", **({} if reason is None else {"reason": reason})))

    async def ask_owner(self, question: str, options: Sequence[str] | None = None, field: str | None = None,
                        value: str | None = None) -> dict[str, Any]:  # fmt: skip
        params = api_params({"question": question, "options": None if options is None else list(options),
                             "field": field, "value": value})  # fmt: skip
        return dict(await self._call("room.ask_owner", **params))

    async def answer(self, approved: bool, text: str | None = None) -> dict[str, Any]:
        return dict(await self._call("room.answer", approved=approved, **({} if text is None else {"text": text})))

    async def summary(self, text: str) -> dict[str, Any]:
        return dict(await self._call("room.summary", text=text))

    async def result(self, wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        if not wait:
            return dict(await self._call("room.result"))
        wait_s = timeout or RESULT_WAIT_MAX
        return dict(await self.conn.call("room.result", room_id=self.id, wait_s=wait_s, timeout=wait_s + CALL_TIMEOUT))

    def watch(self, after: int = -1) -> RoomWatch:
        """``async for note in room.watch(after)``: as clawroom.Room.watch."""
        return RoomWatch(self, after)

    async def wait_turn(self, timeout: float | None = None) -> dict[str, Any]:
        """Until this side is awaited: the status card. RoomClosed if the room closes first, TimeoutError
        after `timeout` s."""
        view = await self.status()
        if not view["your_turn"] and view["result"] is None:
            with trio.move_on_after(float("inf") if timeout is None else timeout):
                async for _note in self.watch(view["seq"]):
                    view = await self.status()  # any change: re-read the card
                    if view["your_turn"] or view["result"] is not None:
                        break
        if view["your_turn"]:
            return view
        if view["result"] is not None:
            raise RoomClosed(f"room {self.id} closed ({view['result'].get('status')}) before this side's turn",
                             data={"room_id": self.id, "result": view["result"]})  # fmt: skip
        raise TimeoutError(f"not this side's turn in room {self.id} within {timeout:g} s")


class RoomWatch:
    """The async iterator of AsyncRoom.watch. Each refill subscribes on a fresh connection after the last
    event it passed on, takes what has come, and closes it (client.WatchCursor keeps the order), so
    nothing of trio's stays open between two notes."""

    def __init__(self, room: AsyncRoom, after: int) -> None:
        self.room = room
        self.cursor = client.WatchCursor(room.id, after)
        self.ready: collections.deque[dict[str, Any]] = collections.deque()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self.ready:
            if self.cursor.closed:
                raise StopAsyncIteration
            with translated():
                await self._refill()
        note = self.ready.popleft()
        params = note.get("params") or {}
        self.room._saw(params["event"]["seq"] if note["method"] == "room.event" else params.get("seq"))
        return note

    async def _refill(self) -> None:
        async with client.AsyncClient(self.room.conn.socket) as c:
            await c.call("room.watch", room_id=self.room.id, after=self.cursor.seq)
            notes = c.notifications()
            got = [await notes.receive()]
            while True:
                try:
                    got.append(notes.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            for note in got:
                if self.cursor.is_close(note):
                    transcript = await c.call("room.transcript", room_id=self.room.id, after=self.cursor.seq)
                    self.ready.extend(self.cursor.closing(transcript, note))
                    return
                if (passed := self.cursor.take(note)) is not None:
                    self.ready.append(passed)


def connect(socket: str | None = None, *, timeout: float = CALL_TIMEOUT) -> AsyncConnection:
    return AsyncConnection(socket, timeout=timeout)


async def create(topic: str, required_fields: Sequence[str | dict[str, str]], *, goal: str | None = None,
                 max_turns: int | None = None, **more: Any) -> AsyncRoom:  # fmt: skip
    return await connect().create(topic, required_fields, goal=goal, max_turns=max_turns, **more)


async def join(url: str, *, label: str | None = None, context: str | None = None, **more: Any) -> AsyncRoom:
    return await connect().join(url, label=label, context=context, **more)


async def rooms() -> list[dict[str, Any]]:
    return await connect().rooms()


async def room(room_id: str) -> AsyncRoom:
    return await connect().room(room_id)
