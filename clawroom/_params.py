"""What the sync and trio libraries share: the mapping of keyword arguments to the API's params."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

CALL_TIMEOUT = 60.0  # seconds to wait for any one answer, as the CLI
RESULT_WAIT_MAX = 366 * 86400.0  # result(wait=True) without a timeout: as long as the daemon allows

# create()/join() keyword -> the API's param (SPEC §15.7); the others pass through under their own name
_RENAMED = {"turn_timeout": "turn_timeout_s", "deadline": "deadline_s", "answer_timeout": "answer_timeout_s",
            "invite_ttl": "invite_ttl_s", "required_fields": "fields", "agent": "agent_command",
            "deliver": "deliver_command"}  # fmt: skip
_ARGV = {"agent_command", "deliver_command", "notify"}


def _argv(value: str | Sequence[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(a) for a in value]


def api_params(given: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of create()/join() as the API's params; None values are left out (the daemon's
    default). A command may be an argv list or one shell-quoted string."""
    params: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        name = _RENAMED.get(key, key)
        params[name] = _argv(value) if name in _ARGV else value
    return params


def send_params(
    text: str | None,
    propose: dict[str, str] | None,
    accept: Sequence[str] | None,
    reject: Sequence[str] | None,
    refs: Sequence[str] | None,
    sid: str | None,
) -> dict[str, Any]:
    """room.send's params. `refs` cite what the moves rest on (``event:<seq>``, ``fact:<id>``,
    ``answer:<question_id>``): given, the moves are sent as explicit ``moves`` each carrying them."""
    params: dict[str, Any] = {}
    if text:
        params["text"] = text
    if refs:
        moves: list[dict[str, Any]] = [
            {"op": "propose", "field": f, "value": v, "refs": list(refs)} for f, v in (propose or {}).items()
        ]
        moves += [{"op": "accept", "field": f, "refs": list(refs)} for f in accept or ()]
        moves += [{"op": "reject", "field": f, "refs": list(refs)} for f in reject or ()]
        params["moves"] = moves
    else:
        if propose:
            params["propose"] = dict(propose)
        if accept:
            params["accept"] = list(accept)
        if reject:
            params["reject"] = list(reject)
    if sid:
        params["sid"] = sid
    return params


class RoomBase:
    """What the sync Room and the trio AsyncRoom share: the room's id and join URL, our role, and the last
    seq this object saw (the one `send`/`close` are bound to by default)."""

    kind = "Room"

    def __init__(self, view: dict[str, Any]) -> None:
        self.id: str = view["room_id"]
        self.join_url: str | None = view.get("join_url")
        self.role: str = view.get("role", "")
        self.seq: int | None = view.get("seq")
        self.view = view

    def __repr__(self) -> str:
        return f"<clawroom.{self.kind} {self.id} {self.role}>"

    def _saw(self, seq: int | None) -> None:
        if seq is not None and (self.seq is None or seq > self.seq):
            self.seq = seq
