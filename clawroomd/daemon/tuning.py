"""`[tuning]` in the daemon's config file: typed, checked when the config loads, so a typo or a bad value
stops the daemon at start with a message (exit 2) instead of surfacing as a float() error mid-room."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..link.connection import DEAD_AFTER, KEEPALIVE_INTERVAL


class TuningError(ValueError):
    """A bad [tuning] key or value; the message names it and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """Seconds, all of them; each must be a positive number (at most a day)."""

    send_timeout: float = 15.0  # how long a move waits for the host's answer before it is reported `queued`
    keepalive_interval: float = KEEPALIVE_INTERVAL  # peer link heartbeat when nothing else was sent
    dead_after: float = DEAD_AFTER  # a peer link silent this long is closed
    max_backoff: float = 30.0  # the guest's longest wait between redials of a host
    guest_grace: float = 30.0  # past the room deadline, how long a guest waits for a vanished host
    agent_timeout: float = 120.0  # one run of a room's agent command

    @property
    def link_options(self) -> dict[str, float]:
        return {"keepalive_interval": self.keepalive_interval, "dead_after": self.dead_after}

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Tuning:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise TuningError(f"unknown [tuning] key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, float] = {}
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
                raise TuningError(f"[tuning] {key} must be a number of seconds above 0, at most 86400, not {value!r}")
            values[key] = float(value)
        return cls(**values)
