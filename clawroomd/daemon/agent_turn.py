"""What one run of a room's agent command is told beyond the room itself: how long it has, the refusal
of its previous reply to the same state, and the extra environment its owner handed over.

`time_left_s` lets an agent that waits on something slow (a model) give up cleanly before the daemon
stops waiting for it. The host owns the deadlines and knows them exactly (`HostRoom.next_deadline`); a
guest reckons them from when it saw the room reach this state, as `GuestSide.local_deadline` does:
`deadline_ms - ts` of the host's latest event is the host's own reckoning, so clock skew cancels out.

`agent_env` (room.create / room.join) carries values such as a model API key from the owner's shell to
the room's agent command when the daemon was started without them. They live in this process's memory
only, for that room's agent: never stored, logged or put on a command line, and gone after a restart.
"""

from __future__ import annotations

import re
from typing import Any

from .clock import mono_ms
from .errors import ApiError
from .live import LiveRoom

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_ENV_VARS = 8
MAX_ENV_VALUE = 8192
# Names an owner may not override: they decide which program and libraries the daemon runs.
RESERVED_ENV = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "LD_PRELOAD", "LD_LIBRARY_PATH", "HOME"})


def time_left_s(live: LiveRoom, *, turn_began_ms: int, cap_s: float) -> float:
    """Seconds before this side's turn (or the room) runs out, at most `cap_s` (the agent timeout)."""
    now = mono_ms()
    left = [cap_s]
    st, spec = live.state, live.state.spec
    if live.role == "host":
        due = live.host.next_deadline()
        if due is not None:
            left.append((due[0] - now) / 1000)
    elif spec is not None:
        elapsed = now - turn_began_ms
        if spec.turn_timeout_ms is not None and st.awaited == live.role and live.role not in st.consulting:
            left.append((spec.turn_timeout_ms - elapsed) / 1000)
        if spec.deadline_ms is not None:
            latest = next(e for e in reversed(live.core.log) if e.header.author == "host")
            left.append((spec.deadline_ms - latest.header.ts - elapsed) / 1000)
    return round(max(min(left), 0.0), 3)


def check_agent_env(params: dict[str, Any]) -> dict[str, str] | None:
    """The `agent_env` parameter: {NAME: value} for the room's agent command (None when not given).
    Error messages name the variable, never its value."""
    env = params.get("agent_env")
    if env is None:
        return None
    if not isinstance(env, dict):
        raise ApiError("invalid_params", "agent_env is an object {NAME: value}")
    if params.get("agent_command") is None:
        raise ApiError("invalid_params", "agent_env is for the room's agent: give agent_command too")
    if len(env) > MAX_ENV_VARS:
        raise ApiError("bad_value", f"agent_env holds at most {MAX_ENV_VARS} variables")
    for name, value in env.items():
        if not ENV_NAME_RE.match(name) or name.upper() in RESERVED_ENV:
            raise ApiError("bad_value", f"agent_env: {name[:40]!r} is not a variable name an agent may be given")
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ENV_VALUE or "\0" in value:
            raise ApiError("bad_value", f"agent_env: {name} must be a text of 1 to {MAX_ENV_VALUE} characters")
    return dict(env)
