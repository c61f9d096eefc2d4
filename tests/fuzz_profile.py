"""The fuzz suites' two profiles. Short (default): a few hundred inputs per target, seconds in all, in every
run of the suite. Long: CLAWROOM_FUZZ=long python3 -m pytest -q -s tests/test_fuzz_*.py runs FUZZ_EXAMPLES
inputs per target (default 12,500: over 100,000 across the targets) and prints each target's count."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings

LONG = os.environ.get("CLAWROOM_FUZZ") == "long"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12500")) if LONG else 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # the same inputs every run of the short profile would test less, not more
    derandomize=not LONG,  # the short profile is reproducible in CI; the long one explores
)
RUNS: dict[str, int] = {}


@contextmanager
def counted(name: str) -> Iterator[Callable[[], None]]:
    """Count the inputs one target ran (printed with -s; the long profile's figures)."""
    RUNS[name] = 0

    def tick() -> None:
        RUNS[name] += 1

    t0 = time.perf_counter()
    yield tick
    print(f"\nfuzz {name}: {RUNS[name]} inputs in {time.perf_counter() - t0:.1f} s, 0 unexpected exceptions")


def only(allowed: tuple[type[BaseException], ...], fn: Callable[[], Any]) -> Any:
    """Run `fn`; an exception of an allowed type is an answer, anything else fails the test."""
    try:
        return fn()
    except allowed as exc:
        return exc
