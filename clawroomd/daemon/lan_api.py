"""The local API's LAN methods: `lan.peers`, `room.approve`, `room.deny`, and `room.join` by room id.

Specified in protocol/SPEC.md §15.7 and §13.11.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..core.ids import is_room_id
from .errors import ApiError
from .lan_join import JoinRequests, Knocks
from .peers import Peers
from .views import status_view

if TYPE_CHECKING:
    from .rpc import Session


def _opt_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ApiError("invalid_params", f"parameter {name!r} is a non-empty string")
    return value


class LanApi:
    def __init__(
        self, peers: Peers, requests: JoinRequests, knocks: Knocks, *, info: Callable[[], dict[str, Any]]
    ) -> None:
        self.peers = peers
        self.requests = requests
        self.knocks = knocks
        self.info = info
        self.methods: dict[str, Callable[[dict[str, Any], Session], Awaitable[Any]]] = {
            "lan.peers": self.lan_peers,
            "room.approve": self.room_approve,
            "room.deny": self.room_deny,
        }

    async def lan_peers(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return {"lan": self.info(), "peers": self.peers.view()}

    async def room_approve(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return self._decide(params, approve=True)

    async def room_deny(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return self._decide(params, approve=False)

    def _decide(self, params: dict[str, Any], *, approve: bool) -> dict[str, Any]:
        room_id = params.get("room_id")
        if not isinstance(room_id, str):
            raise ApiError("invalid_params", "missing parameter 'room_id'")
        return self.requests.decide(room_id, _opt_str(params, "peer"), approve=approve)

    def inbox(self) -> dict[str, Any]:
        return {"join_requests": self.requests.inbox(), "outgoing_requests": self.knocks.inbox()}

    async def join_room(
        self, params: dict[str, Any], *, label: str, meta: dict[str, Any], timeout: float, on_fail: Callable[[], None]
    ) -> dict[str, Any]:
        """`room.join` with `room_id` (no join URL): ask the host on the LAN, wait for its owner.

        `wait` false: return as soon as the host answered (`state` pending, with the SAS to compare) or
        the request ended; else wait for the end (up to `timeout_s`) and return the room's status card."""
        room_id = params["room_id"]
        if not isinstance(room_id, str) or not is_room_id(room_id):
            raise ApiError("bad_value", f"{room_id!r} is not a room id (cr_ and 8-32 lowercase hex digits)")
        wait = params.get("wait", True)
        if not isinstance(wait, bool):
            raise ApiError("invalid_params", "parameter 'wait' is true or false")
        o = self.knocks.start(room_id, _opt_str(params, "peer"), label=label, meta=meta, on_fail=on_fail)
        with trio.move_on_after(timeout):
            await (o.done if wait else o.answered).wait()
        if o.error is not None:
            raise o.error
        if not wait or o.live is None:
            if wait:
                sas = f" (SAS {o.sas})" if o.sas else ""
                raise ApiError(
                    "too_slow",
                    f"no answer from the host's owner within {timeout:g} s{sas}; the request still waits: "
                    "run the same join again to keep waiting",
                    o.view(),
                )
            return o.view()
        return {**status_view(o.live), "sas": o.sas}
