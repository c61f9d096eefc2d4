"""The local API's owner-context methods (`context.write`, `context.show`) and the copy of a profile into
a room that `room.create` / `room.join` make (param `context`). SPEC.md §15.7 documents them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .context_store import OwnerContexts
from .errors import ApiError
from .owner_checks import check_limits_for_fields
from .owner_context import DEFAULT_PROFILE, PRIVATE_NOTICE, ContextError, OwnerContext, check_profile_name
from .rooms import Rooms

if TYPE_CHECKING:
    from .rpc import Session


def _param(params: dict[str, Any], name: str, kind: type) -> Any:
    value = params.get(name)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise ApiError("invalid_params", f"parameter {name!r} has the wrong type")
    return value


def _profile_name(name: str) -> str:
    try:
        return check_profile_name(name)
    except ContextError as err:
        raise ApiError("bad_value", str(err)) from None


def _no_profile(name: str) -> ApiError:
    return ApiError(
        "no_context",
        f"there is no owner-context profile {name!r}; write it first: clawroom context write --profile {name} "
        "--owner-name ...",
        {"profile": name},
    )


class ContextMethods:
    """`context.write` and `context.show` over the profiles and the rooms' copies."""

    def __init__(self, contexts: OwnerContexts, rooms: Rooms) -> None:
        self.contexts = contexts
        self.rooms = rooms
        self.methods: dict[str, Callable[[dict[str, Any], Session], Awaitable[Any]]] = {
            "context.write": self.context_write,
            "context.show": self.context_show,
        }

    def _target(self, params: dict[str, Any], *, writing: bool) -> tuple[str | None, str | None]:
        """(profile, room_id): exactly one is set; no target at all is the `default` profile."""
        profile, room_id = _param(params, "profile", str), _param(params, "room_id", str)
        if profile is not None and room_id is not None:
            raise ApiError("invalid_params", "give `profile` or `room_id`, not both")
        if room_id is not None:
            live = self.rooms.get(room_id)
            if writing and live.closed:
                raise ApiError("room_closed", f"room {room_id} is closed; its owner context can no longer change")
            return None, room_id
        return _profile_name(profile if profile is not None else DEFAULT_PROFILE), None

    def _read(self, profile: str | None, room_id: str | None) -> OwnerContext | None:
        if room_id is not None:
            return self.contexts.read_room(room_id)
        assert profile is not None
        return self.contexts.read_profile(profile)

    async def context_write(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        profile, room_id = self._target(params, writing=True)
        fields = _param(params, "fields", dict)
        if fields is None:
            raise ApiError(
                "invalid_params", "missing parameter 'fields' (the context's fields, e.g. {\"owner_name\": ...})"
            )
        replace = bool(_param(params, "replace", bool))
        path = self.contexts.room_path(room_id) if room_id else self.contexts.profile_path(str(profile))
        existed = path.exists()
        # A malformed file is bad_context here, before anything is written; --replace does not read it.
        base = None if replace else self._read(profile, room_id)
        try:
            ctx = OwnerContext.from_json(fields, base=base)
        except ContextError as err:
            raise ApiError("bad_value", f"owner context: {err}") from None
        if room_id is not None:
            spec = self.rooms.get(room_id).state.spec
            check_limits_for_fields(list(ctx.limits), None if spec is None else spec.field_names)
            self.contexts.write_room(room_id, ctx)
        else:
            assert profile is not None
            self.contexts.write_profile(profile, ctx)
        return {"profile": profile, "room_id": room_id, "path": str(path), "created": not existed,
                "context": ctx.to_json()}  # fmt: skip

    async def context_show(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        profile, room_id = self._target(params, writing=False)
        ctx = self._read(profile, room_id)
        if ctx is None:
            if profile is not None:
                raise _no_profile(profile)
            raise ApiError(
                "no_context",
                f"room {room_id} has no owner context; write one: clawroom context write --room {room_id} ...",
                {"room_id": room_id},
            )
        path = self.contexts.room_path(room_id) if room_id else self.contexts.profile_path(str(profile))
        return {"profile": profile, "room_id": room_id, "path": str(path), "context": ctx.to_json(),
                "private_facts_notice": PRIVATE_NOTICE}  # fmt: skip

    # -- room.create / room.join
    def for_new_room(self, params: dict[str, Any]) -> OwnerContext | None:
        """The profile a new room copies: `context` if given (it must exist), else `default` if there is one.
        Read before the room is made, so a missing or malformed profile changes nothing."""
        name = _param(params, "context", str)
        ctx = self.contexts.read_profile(_profile_name(name if name is not None else DEFAULT_PROFILE))
        if ctx is None and name is not None:
            raise _no_profile(name)
        return ctx

    def copy_into(self, room_id: str, ctx: OwnerContext) -> None:
        self.contexts.write_room(room_id, ctx)

    def take_back(self, room_id: str) -> None:
        """Remove the copy made for a join that failed (no room was made)."""
        self.contexts.remove_room(room_id)
