"""The daemon's two clocks: the wall clock dates our events, the monotonic clock times every deadline."""

from __future__ import annotations

import time

import trio


def now_ms() -> int:
    """The wall clock: what our events' `ts` say. Never used to time a deadline (SPEC §9)."""
    return time.time_ns() // 1_000_000


def mono_ms() -> int:
    """The monotonic clock every deadline runs on (trio's, so it agrees with trio's timeouts)."""
    return int(trio.current_time() * 1000)
