"""Loaded by a test daemon's interpreter at start (this folder is put on its PYTHONPATH): shifts its wall
clock, `time.time` and `time.time_ns`, by CLAWROOM_TEST_CLOCK_SKEW_MS, as a machine whose clock is off would.
The monotonic clocks (and so trio's) are untouched, as they are on such a machine."""

import os
import time

_SKEW_NS = int(os.environ.get("CLAWROOM_TEST_CLOCK_SKEW_MS", "0")) * 1_000_000
_time_ns = time.time_ns


def _skewed_time_ns() -> int:
    return _time_ns() + _SKEW_NS


def _skewed_time() -> float:
    return _skewed_time_ns() / 1e9


if _SKEW_NS:
    time.time_ns = _skewed_time_ns
    time.time = _skewed_time
