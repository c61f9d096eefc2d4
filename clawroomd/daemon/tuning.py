"""`[tuning]` in the daemon's config file: typed, checked when the config loads, so a typo or a bad value
stops the daemon at start with a message (exit 2) instead of surfacing mid-room.

Imports nothing heavy (no trio): `clawroomd --help` and config errors stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..link.limits import PeerLimits


class TuningError(ValueError):
    """A bad [tuning] key or value; the message names it and what is allowed."""


# key -> (whole number?, lowest, highest)
BOUNDS: dict[str, tuple[bool, float, float]] = {
    "send_timeout": (False, 0.001, 86400),
    "keepalive_interval": (False, 0.001, 86400),
    "dead_after": (False, 0.001, 86400),
    "max_backoff": (False, 0.001, 86400),
    "guest_grace": (False, 0.001, 86400),
    "agent_timeout": (False, 0.001, 86400),
    "question_timeout": (False, 0.001, 366 * 86400),
    "handshake_timeout": (False, 0.5, 300),
    "max_pending_handshakes": (True, 1, 1 << 16),
    "max_pending_per_address": (True, 1, 1 << 16),
    "max_links_per_peer": (True, 1, 1024),
    "max_peer_connections": (True, 1, 1 << 20),
    "watch_memory": (True, 1 << 16, 1 << 40),
    "lan_stale_after": (False, 0.1, 86400),
    "join_request_ttl": (False, 0.1, 86400),
}

# [tuning] key -> PeerLimits field
_PEER_LIMITS = {
    "handshake_timeout": "handshake_timeout",
    "max_pending_handshakes": "max_pending",
    "max_pending_per_address": "max_pending_per_source",
    "max_links_per_peer": "max_links_per_peer",
    "max_peer_connections": "max_connections",
}


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """Every [tuning] key. None: the peer link's own default (clawroomd/link)."""

    send_timeout: float = 15.0  # s a move waits for the host's answer before it is reported `queued`
    keepalive_interval: float | None = None  # s of silence before a peer link heartbeat
    dead_after: float | None = None  # s a silent peer link lives
    max_backoff: float = 30.0  # s, the guest's longest wait between redials of a host
    guest_grace: float = 30.0  # s past the room deadline a guest waits for a vanished host
    agent_timeout: float = 120.0  # s for one run of a room's agent command
    question_timeout: float = 3600.0  # s a question to the owner waits (at most 0.8 x the answer timeout)
    handshake_timeout: float | None = None  # s a peer connection may take from accept to admission
    max_pending_handshakes: int | None = None  # peer connections in their handshake, in total
    max_pending_per_address: int | None = None  # ... from one IPv4 address / IPv6 /64
    max_links_per_peer: int | None = None  # admitted links per peer identity (a new one replaces the oldest)
    max_peer_connections: int | None = None  # all peer connections (also at most half the open-file limit)
    watch_memory: int = 64 << 20  # bytes of unread local-API notifications (and, apart, answers), all connections
    lan_stale_after: float = 120.0  # s without news of a LAN peer before we dial it to confirm it is there
    join_request_ttl: float = 600.0  # s a LAN join request waits for the host owner's approval

    @property
    def link_options(self) -> dict[str, float]:
        """Keyword arguments for the peer link's connections: only what the config sets."""
        return {
            k: v for k, v in (("keepalive_interval", self.keepalive_interval), ("dead_after", self.dead_after))
            if v is not None
        }  # fmt: skip

    def peer_limits(self) -> PeerLimits | None:
        """The listener's caps (None: its defaults); imported only when the daemon starts listening."""
        given: dict[str, Any] = {f: getattr(self, k) for k, f in _PEER_LIMITS.items() if getattr(self, k) is not None}
        if not given:
            return None
        from ..link.limits import PeerLimits

        return PeerLimits(**given)

    @classmethod
    def from_table(cls, table: Any) -> Tuning:
        if not isinstance(table, dict):
            raise TuningError("tuning must be a table ([tuning])")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise TuningError(f"unknown [tuning] key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            whole, low, high = BOUNDS[key]
            if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
                raise TuningError(f"[tuning] {key} must be {'a whole number' if whole else 'a number'}, not {value!r}")
            if not low <= value <= high:
                raise TuningError(f"[tuning] {key} must be from {low:g} to {high:g}, not {value!r}")
            values[key] = int(value) if whole else float(value)
        return cls(**values)
