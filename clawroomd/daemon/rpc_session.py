"""One local-API connection as the dispatcher sees it, and the bounds on what it may leave unsent.

Every line a connection owes its client waits in the session's queue until the writer task has handed it
to the kernel. Memory stays bounded three ways:

* per connection, ``max_outgoing`` bytes (MAX_OUTGOING): a reply that takes the queue over it makes the
  request reader wait (backpressure: the client is not reading its answers); a notification that would
  take it over drops the connection;
* all connections' queued replies together, ``NotifyBudget.limit`` again (counted apart from the
  notifications): past it, a connection with replies of its own still unsent is not read from until they
  are written, so clients that send requests and never read the answers hold that much in all, plus one
  answer each, not 8 MiB each;
* a *paced* notification (room.watch's stream) waits while more than PACE_BYTES are unsent, so a watcher
  that does not read holds a cursor into the room's log rather than a copy of it;
* all connections' queued notification bytes together, ``NotifyBudget.limit``: past it, the connection
  with the most notification bytes queued (the reader furthest behind) is dropped.

A dropped connection loses its unsent output at once (the memory is freed there and then), is sent one
JSON-RPC error line (id null, ``too_slow``) and is closed once that is written, or after DROP_GRACE s.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .errors import ApiError

log = logging.getLogger("clawroomd.daemon.rpc")

MAX_OUTGOING = 8 << 20  # bytes queued per connection (see the module docstring)
PACE_BYTES = 64 << 10  # unsent bytes above which a paced notification waits for the client to read
WRITE_CHUNK = 64 << 10  # the writer joins whole lines up to about this many bytes per send
DEFAULT_NOTIFY_BUDGET = 64 << 20  # queued notification bytes on all connections together
DROP_GRACE = 1.0  # seconds a dropped connection has to take its error line before it is closed
_conn_ids = itertools.count(1)


def encode_line(obj: Any) -> bytes:
    """One JSON value as a compact UTF-8 line (falls back to ASCII escapes for lone surrogates)."""
    try:
        return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    except UnicodeEncodeError:
        return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def error_response(req_id: Any, err: ApiError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": err.to_json()}


class NotifyBudget:
    """The notification bytes queued on every connection of one server, and who goes when it is full."""

    def __init__(self, limit: int = DEFAULT_NOTIFY_BUDGET) -> None:
        self.limit = limit
        self.used = 0  # notification bytes queued
        self.replies = 0  # reply bytes queued (bounded by backpressure, never by dropping)
        self.sessions: set[Session] = set()

    def shed(self) -> None:
        """Drop the slowest readers until the total is back under the limit."""
        while self.used > self.limit:
            victim = max(
                (s for s in self.sessions if s.note_bytes and not s.dropped), key=lambda s: s.note_bytes, default=None
            )
            if victim is None:
                return
            victim.drop(
                f"this connection fell {victim.note_bytes} bytes behind on its notifications when all "
                f"connections together reached the daemon's limit ({self.limit} bytes); the slowest reader "
                "is dropped first. Read notifications as they come, then watch again with `after`"
            )


class Session:
    """One client connection, handed to the dispatcher with every request.

    * ``uid``, ``gid``, ``pid``: the client's credentials (SO_PEERCRED); ``conn_id`` for logs.
    * ``await notify(method, params, paced=False) -> bool``: queue a JSON-RPC notification. Unpaced, it
      never blocks; paced, it first waits until the client has read all but PACE_BYTES. Either way the
      bounds in the module docstring apply. Returns False once the session is closed or dropped.
    * ``start_soon(fn, *args)``: run ``await fn(*args)`` in the connection's nursery; cancelled when the
      connection closes. An exception in it is logged and closes this connection (never the daemon).
    * ``on_close(callback)``: call ``callback()`` (sync) when the connection ends (e.g. to unregister a
      watcher). Called at once if already closed.
    * ``close()``: end the connection (cancels its tasks, frees its queue); ``closed``: whether it has ended.
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        nursery: trio.Nursery,
        *,
        uid: int,
        gid: int,
        pid: int,
        max_outgoing: int = MAX_OUTGOING,
        budget: NotifyBudget | None = None,
    ) -> None:
        self.uid, self.gid, self.pid = uid, gid, pid
        self.conn_id = next(_conn_ids)
        self._stream = stream
        self._nursery = nursery
        self._max_outgoing = max_outgoing
        self.budget = budget or NotifyBudget()
        self.budget.sessions.add(self)
        self._queue: deque[tuple[bytes, bool]] = deque()  # (line, is a notification)
        self._queued = 0  # bytes not yet handed to the kernel, the chunk being written included
        self.note_bytes = 0  # of which notifications, counted against the budget (0 once dropped)
        self.reply_bytes = 0  # of which replies (and the last error line), counted in budget.replies
        self._wakeup = trio.Event()  # set when the queue gains a line
        self._progress = trio.Event()  # set when bytes were written, or on drop/close
        self._callbacks: list[Callable[[], object]] = []
        self.dropped = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<Session #{self.conn_id} uid={self.uid} pid={self.pid}{' closed' if self.closed else ''}>"

    # -- output
    def _enqueue(self, data: bytes, *, note: bool) -> None:
        self._queue.append((data, note))
        self._queued += len(data)
        if note and not self.dropped:
            self.note_bytes += len(data)
            self.budget.used += len(data)
        elif not note:
            self.reply_bytes += len(data)
            self.budget.replies += len(data)
        self._wakeup.set()

    def _release(self, size: int, notes: int, replies: int) -> None:
        """`size` bytes, `notes` of them notifications and `replies` replies, have been written (or discarded)."""
        if self.closed:
            return  # close() already released everything
        self._queued -= size
        self.reply_bytes -= replies
        self.budget.replies -= replies
        if not self.dropped:  # drop() already took this connection's notifications off the budget
            self.note_bytes -= notes
            self.budget.used -= notes
        self._progress.set()
        self._progress = trio.Event()

    async def _until_below(self, level: int) -> None:
        while self._queued > level and not (self.closed or self.dropped):
            await self._progress.wait()

    async def notify(self, method: str, params: Any = None, *, paced: bool = False) -> bool:
        if paced:
            await self._until_below(PACE_BYTES)
        if self.closed or self.dropped:
            return False
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        data = encode_line(msg)
        if self._queued + len(data) > self._max_outgoing:
            self.drop(
                f"this connection left more than {self._max_outgoing} bytes of notifications unread; "
                "read notifications as they come, then watch again with `after`"
            )
            return False
        self._enqueue(data, note=True)
        if self.budget.used > self.budget.limit:
            self.budget.shed()
            if self.dropped:
                return False
        await trio.lowlevel.checkpoint()
        return True

    async def reply(self, obj: dict[str, Any] | bytes) -> None:
        """Queue a response (an object or its encoded line); waits (backpressure on the reader) while the
        output queue is over the limit."""
        if self.closed or self.dropped:
            return
        self._enqueue(obj if isinstance(obj, bytes) else encode_line(obj), note=False)
        await self._until_below(self._max_outgoing)
        while self.budget.replies > self.budget.limit and self.reply_bytes and not (self.closed or self.dropped):
            await self._progress.wait()  # only our own client reading lets us go on: others cannot stall us

    def drop(self, message: str) -> None:
        """Give up on a client that does not keep up: free its unsent output, tell it why, close it."""
        if self.closed or self.dropped:
            return
        log.warning("dropping %r: %s", self, message)
        self.budget.used -= self.note_bytes  # the chunk being written, if any, is gone within DROP_GRACE
        self.note_bytes = 0
        self.dropped = True
        queued_replies = sum(len(data) for data, note in self._queue if not note)
        self._release(sum(len(data) for data, _ in self._queue), 0, queued_replies)
        self._queue.clear()
        self._enqueue(encode_line(error_response(None, ApiError("too_slow", message))), note=False)
        self._nursery.start_soon(self._close_after_grace)

    async def _close_after_grace(self) -> None:
        with trio.move_on_after(DROP_GRACE):
            while self._queued and not self.closed:
                await self._progress.wait()
        self.close()

    async def writer(self) -> None:
        """Hand queued lines to the kernel, whole lines about WRITE_CHUNK bytes at a time."""
        try:
            while True:
                while not self._queue:
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
                lines, size, notes = [], 0, 0
                while self._queue and size < WRITE_CHUNK:
                    data, note = self._queue.popleft()
                    lines.append(data)
                    size += len(data)
                    notes += len(data) if note else 0
                await self._stream.send_all(b"".join(lines))
                del lines
                self._release(size, notes, size - notes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("%r went away while we were writing", self)
            self.close()

    async def flush(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self._until_below(0)

    # -- tasks and lifetime
    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: Any, name: str | None = None) -> None:
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        self._nursery.start_soon(self._guard, fn, args, name=name or getattr(fn, "__qualname__", repr(fn)))

    async def _guard(self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("a task of %r failed; closing that connection", self)
            self.close()

    def on_close(self, callback: Callable[[], object]) -> None:
        if self.closed:
            self._run_callback(callback)
        else:
            self._callbacks.append(callback)

    def _run_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            log.exception("on_close callback of %r failed", self)

    def close(self) -> None:
        if self.closed:
            return
        self._queue.clear()
        self.budget.used -= self.note_bytes
        self.budget.replies -= self.reply_bytes
        self.budget.sessions.discard(self)
        self._queued = self.note_bytes = self.reply_bytes = 0
        self.closed = True
        self._progress.set()
        self._nursery.cancel_scope.cancel()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._run_callback(callback)
