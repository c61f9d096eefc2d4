"""`clawroom status --watch`: the live card (live_card.py), kept up to date until the room closes.

On a terminal it draws in place on the alternate screen: cursor home, each line cleared to its end, the
rest of the screen cleared; it redraws on every room change, every second (so "12s ago" moves) and as
soon as the terminal's size changes (measured every POLL_S, so a resize needs no signal handler), and
every line fits the terminal's width and height. Typed keys are not echoed over the card. When the room
closes it leaves the alternate screen and prints the final card as plain lines, which stay in the
scrollback; Ctrl-C (or SIGTERM/SIGHUP) leaves the alternate screen with nothing printed over the shell,
and the command exits 130 (interrupted, as every command does).

Not on a terminal (a pipe, a file, a test) it prints one plain card per change, no escape codes; with
--json one room.status object per change.

Two connections to the daemon: a thread follows room.watch on one (blocking reads, fed to a queue), the
main thread asks room.status on the other, so the one-at-a-time sync client is never shared.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from clawroomd.client import Client, ConnectionLost, watch_events

from . import render
from .live_card import card_lines

TICK_S = 1.0  # redraw at least this often, so relative times move
POLL_S = 0.2  # how often the terminal's size is measured
CALL_TIMEOUT = 60.0
ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"  # cursor shown, back to the normal screen
HOME, CLEAR_EOL, CLEAR_EOS = "\x1b[H", "\x1b[K", "\x1b[J"
FOOTER = "Ctrl-C: stop watching (the room goes on)"

# Called after each refresh with the room's status; returns lines shown under the card (the demo shows
# its owner's escalation there, and answers it from this hook).
Hook = Callable[[dict[str, Any]], list[str]]


class _End:
    """Put on the queue when the watch ends: `error` None means the room closed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Feed(threading.Thread):
    """room.watch on a connection of its own; every notification goes to `notes`, then one _End."""

    def __init__(self, socket_path: str | os.PathLike[str] | None, room_id: str) -> None:
        super().__init__(name=f"watch {room_id}", daemon=True)  # a daemon thread: Ctrl-C never waits on it
        self.notes: queue.Queue[dict[str, Any] | _End] = queue.Queue()
        self.client = Client(socket_path, timeout=CALL_TIMEOUT)
        self.room_id = room_id

    def run(self) -> None:
        error: BaseException | None = ConnectionLost("the daemon closed the connection before the room closed")
        try:
            for note in watch_events(self.client, self.room_id):
                self.notes.put(note)
                if note["method"] == "room.closed":
                    error = None
        except Exception as exc:
            error = exc
        finally:
            self.client.close()
            self.notes.put(_End(error))


class _Room:
    """What the card is drawn from: the status, every event so far, our owner's pending question."""

    def __init__(self, client: Client, room_id: str, view: dict[str, Any]) -> None:
        self.client, self.room_id, self.view = client, room_id, view
        self.events: list[dict[str, Any]] = []
        self.question: dict[str, Any] | None = None
        self.ended: _End | None = None

    def take(self, note: dict[str, Any] | _End) -> None:
        if isinstance(note, _End):
            self.ended = note
        elif note["method"] == "room.event":
            self.events.append(note["params"]["event"])

    def caught_up(self) -> bool:
        """The events seen reach the status's seq (room.watch replays the history first)."""
        return bool(self.events) and int(self.events[-1]["seq"]) >= int(self.view["seq"])

    def refresh(self) -> None:
        self.view = self.client.call("room.status", room_id=self.room_id)
        self.question = None
        if self.view.get("role") in (self.view.get("consulting") or []):
            pending = self.client.call("owner.inbox").get("questions") or []
            self.question = next((q for q in pending if q.get("room_id") == self.room_id), None)

    def lines(self, *, width: int | None, height: int | None, notes: list[str], footer: str = "") -> list[str]:
        return card_lines(
            self.view,
            self.events,
            now_ms=time.time() * 1000,
            width=width,
            height=height,
            question=self.question,
            notes=notes,
            footer=footer,
        )


def watch(
    socket_path: str | os.PathLike[str] | None,
    room_id: str,
    *,
    out: TextIO | None = None,
    tty: bool | None = None,
    as_json: bool = False,
    hook: Hook | None = None,
) -> int:
    """Follow `room_id` until it closes (exit 0). `tty` None: whether `out` is a terminal."""
    out = sys.stdout if out is None else out
    tty = (out.isatty() and not as_json) if tty is None else tty
    with Client(socket_path, timeout=CALL_TIMEOUT) as c:
        room = _Room(c, room_id, c.call("room.status", room_id=room_id))
        if room.view.get("result") is None:
            feed = _Feed(socket_path, room_id)
            feed.start()
            if tty:
                _on_terminal(room, feed, out, hook)
            else:
                _plain(room, feed, out, hook, as_json)
        elif as_json:
            print(render.json_line(room.view), file=out, flush=True)
            return 0
        size = _size(out) if tty else None
        notes = hook(room.view) if hook else []
        print("\n".join(room.lines(width=size[0] if size else None, height=None, notes=notes)), file=out, flush=True)
    return 0


# --------------------------------------------------------------------------------------------- plain
def _plain(room: _Room, feed: _Feed, out: TextIO, hook: Hook | None, as_json: bool) -> None:
    """One card per change (seq, lifecycle, link, whose turn), until the room closes (the caller prints
    the last card)."""

    def key(v: dict[str, Any]) -> tuple[Any, ...]:
        return v["seq"], v["lifecycle"], v["peer_connected"], v["your_turn"], v["result"] is not None

    def show() -> None:
        notes = hook(room.view) if hook else []
        if as_json:
            print(render.json_line(room.view), file=out, flush=True)
        else:
            print("\n".join(room.lines(width=None, height=None, notes=notes)) + "\n" + "-" * 60, file=out, flush=True)

    last: tuple[Any, ...] | None = None
    while True:
        room.take(feed.notes.get())
        _drain(room, feed)
        if room.ended is not None:
            _raise_if_lost(room.ended)
            room.refresh()
            return
        room.refresh()
        if room.caught_up() and key(room.view) != last:
            last = key(room.view)
            show()


def _drain(room: _Room, feed: _Feed) -> bool:
    took = False
    while room.ended is None:
        try:
            room.take(feed.notes.get_nowait())
        except queue.Empty:
            break
        took = True
    return took


def _raise_if_lost(ended: _End) -> None:
    if ended.error is not None:
        raise ended.error


# ------------------------------------------------------------------------------------------ terminal
def _size(out: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(out.fileno())
        return max(size.columns, 20), max(size.lines, 5)
    except (OSError, ValueError):
        return 80, 24


def _on_terminal(room: _Room, feed: _Feed, out: TextIO, hook: Hook | None) -> None:
    with _screen(out):
        size: tuple[int, int] | None = None
        next_tick = 0.0
        while True:
            changed = _drain(room, feed)
            if not changed and room.ended is None:
                try:
                    room.take(feed.notes.get(timeout=max(min(POLL_S, next_tick - time.monotonic()), 0.01)))
                    changed = True
                except queue.Empty:
                    pass
            if room.ended is not None:
                _raise_if_lost(room.ended)
                room.refresh()
                return
            now_size = _size(out)
            if changed or now_size != size or time.monotonic() >= next_tick:
                size, next_tick = now_size, time.monotonic() + TICK_S
                room.refresh()
                notes = hook(room.view) if hook else []
                lines = room.lines(width=size[0], height=size[1], notes=notes, footer=FOOTER)
                # Home, each line then clear-to-its-end, clear the rest: no flicker, nothing left over.
                # No newline after the last row, so a full screen never scrolls.
                out.write(HOME + "\n".join(line + CLEAR_EOL for line in lines) + CLEAR_EOS)
                out.flush()


@contextlib.contextmanager
def _screen(out: TextIO) -> Iterator[None]:
    """The alternate screen, no echo of typed keys, and a clean way back on any exit."""

    def stop(signum: int, frame: FrameType | None) -> None:  # SIGTERM, SIGHUP: end like Ctrl-C, screen clean
        raise KeyboardInterrupt

    saved_echo = _echo_off()
    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    out.write(ENTER)
    out.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            out.write(LEAVE)
            out.flush()
        for s, handler in old.items():
            signal.signal(s, handler)
        _echo_restore(saved_echo)


def _echo_off() -> Any:
    try:
        import termios

        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO  # lflag; ISIG stays on, so Ctrl-C still interrupts
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        return fd, saved
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def _echo_restore(saved: Any) -> None:
    if saved is not None:
        import termios

        with contextlib.suppress(OSError):
            termios.tcsetattr(saved[0], termios.TCSANOW, saved[1])
