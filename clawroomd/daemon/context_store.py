"""Where owner contexts live: reusable profiles and each room's own copy, only on this machine.

    <state_dir>/profiles/<name>.json          a profile (`default`, or named: PROFILE_NAME_RULE)
    <state_dir>/rooms/<room_id>/owner_context.json   the room's copy, taken from a profile on create/join

Folders 0700, files 0600, each written whole (temp file, fsync, rename: clawroomd.private_files). None of
it goes into the database, an event, the transcript or the join URL: the peer never sees any of it
unless the agent writes it into a message (and the leak guard refuses private facts there).

A room's context is read once (when the room opens) and kept in memory beside the room
(`LiveRoom.owner_context`); it changes only through `write_room`, which writes the file first. A file
that is not a valid context is a `bad_context` error naming the file, and nothing is changed; such a
room answers `bad_context` to `private_facts` too, so a guard asking for them fails closed.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..private_files import UnsafeFolder, atomic_write, ensure_private_dir
from .errors import ApiError
from .live import LiveRoom
from .owner_context import ContextError, OwnerContext, check_profile_name
from .store import StorageFailed, Store, describe

log = logging.getLogger("clawroomd.context")

ROOM_FILE = "owner_context.json"
MAX_FILE_BYTES = 256 * 1024  # a stored context is at most 64 KiB; anything far larger is not one of ours


class OwnerContexts:
    """This daemon's owner contexts. `lookup` finds an open room (Rooms.lookup), so that writing a room's
    context also updates the copy its status card, agent and guard read."""

    def __init__(self, store: Store, lookup: Callable[[str], LiveRoom | None]) -> None:
        self.store = store
        self.lookup = lookup
        self.profiles_dir = store.state_dir / "profiles"
        self._broken: dict[str, str] = {}  # room id -> why its file could not be read when it opened

    # -- profiles
    def profile_path(self, name: str) -> Path:
        return self.profiles_dir / f"{check_profile_name(name)}.json"

    def read_profile(self, name: str) -> OwnerContext | None:
        """The profile, or None if there is none by that name; `bad_context` if its file is malformed."""
        return _read(self.profile_path(name))

    def write_profile(self, name: str, ctx: OwnerContext) -> Path:
        path = self.profile_path(name)
        try:
            ensure_private_dir(self.profiles_dir, what="the profiles folder")
        except UnsafeFolder as err:
            raise StorageFailed(str(err), path) from None
        except OSError as err:
            raise StorageFailed(describe(err), path) from None
        _write(path, ctx)
        return path

    # -- rooms
    def room_path(self, room_id: str) -> Path:
        return self.store.room_dir(room_id) / ROOM_FILE

    def read_room(self, room_id: str) -> OwnerContext | None:
        """The room's context (None: none written); `bad_context` while its file cannot be read."""
        live = self.lookup(room_id)
        if live is None:
            return _read(self.room_path(room_id))
        if room_id in self._broken:
            live.owner_context = _read(self.room_path(room_id))  # still broken: says why again
            del self._broken[room_id]
        return live.owner_context

    def write_room(self, room_id: str, ctx: OwnerContext) -> Path:
        """Write the room's context (before the room exists too: a guest's copy is in place before its
        `joined` can wake the agent), then show it to the open room, if any."""
        path = self.room_path(room_id)
        try:
            self.store.write_room_file(room_id, ROOM_FILE, _encode(ctx))
        except OSError as err:
            raise StorageFailed(describe(err), path) from None
        self._broken.pop(room_id, None)
        if (live := self.lookup(room_id)) is not None:
            live.owner_context = ctx
            live.bump()  # the card and the lifecycle changed: watchers hear of it
        return path

    def remove_room(self, room_id: str) -> None:
        """Take back a copy written for a join that did not happen."""
        try:
            self.store.remove_room_file(room_id, ROOM_FILE)
            os.rmdir(self.store.room_dir(room_id))  # only if nothing else is in it
        except OSError:
            pass

    def attach(self, live: LiveRoom) -> None:
        """A room opens (created, joined, restored): read its copy, if one was written."""
        try:
            live.owner_context = _read(self.room_path(live.room_id))
        except ApiError as err:
            self._broken[live.room_id] = err.message
            log.error("room %s: %s", live.room_id, err.message)

    # -- what the owner's side of the daemon (guard, limits, provenance) reads
    def private_facts(self, room_id: str) -> list[str]:
        """The room's private facts, exactly as the owner wrote them ([] without a context). Raises
        ApiError `bad_context` while the room's file is malformed: refuse to send rather than guess."""
        ctx = self.read_room(room_id)
        return list(ctx.private_facts) if ctx else []

    def confirmed_facts(self, room_id: str) -> dict[str, str]:
        """Fact id -> text, for `fact:<id>` references."""
        ctx = self.read_room(room_id)
        return {f.id: f.text for f in ctx.confirmed_facts} if ctx else {}

    def limits(self, room_id: str) -> list[str]:
        """The authority limits as written (`price<=52000`), for clawroomd.owner.limits to read."""
        ctx = self.read_room(room_id)
        return list(ctx.limits) if ctx else []


def _encode(ctx: OwnerContext) -> bytes:
    return (json.dumps(ctx.to_json(), ensure_ascii=False, indent=2) + "\n").encode()


def _write(path: Path, ctx: OwnerContext) -> None:
    try:
        atomic_write(path, _encode(ctx))
    except OSError as err:
        raise StorageFailed(describe(err), path) from None


def _malformed(path: Path, why: str) -> ApiError:
    return ApiError(
        "bad_context",
        f"{path} is not a valid owner context ({why}); nothing was changed. Fix the file, or write a new one "
        "over it with `clawroom context write --replace ...`",
        {"path": str(path)},
    )


def _read(path: Path) -> OwnerContext | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _malformed(path, err.strerror or str(err)) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _malformed(path, "it is not a regular file")
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _malformed(path, f"it is larger than {MAX_FILE_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _malformed(path, "it is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise _malformed(path, f"not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    try:
        return OwnerContext.from_json(doc)
    except ContextError as err:
        raise _malformed(path, str(err)) from None
