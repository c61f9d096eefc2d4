"""Standing suite, local clients (issue 12 item 5): clients of the local API that flood the socket without
reading, send huge or deeply nested lines, or subscribe and never read. Meanwhile an honest room on the
same daemon keeps its latency (p50/p99 of send -> peer sees) and the daemon its memory (RSS from /proc).
The host runs with watch_memory = 16 MiB so that the bounds are tight enough to be worth asserting.
Figures: `python -m pytest -s tests/test_hostile_client.py`, or bench/hostile.py against a baseline."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from hostile_suite import attack_and_measure, daemon_pair, log_problems, peak_growth_mb

from clawroomd.testing import DaemonProcess
from clawroomd.testing.hostile import client_flood, huge_lines, silent_watchers

pytestmark = pytest.mark.slow
WATCH_MEMORY = 16 << 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    yield from daemon_pair(tmp_path_factory.mktemp("hostile-client"), watch_memory=WATCH_MEMORY)


async def test_clients_flooding_requests_without_reading(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    """32 connections write requests as fast as the daemon takes them and never read an answer. Each may
    hold up to 8 MiB of answers; all of them together used to hold 32 x 8 MiB (RSS +320 MB) and the honest
    room's p99 went to ~1.8 s."""
    figures, _ = await attack_and_measure(pair, "client request flood", partial(client_flood, connections=32), ramp=3)
    assert figures.stats.counts.get("requests", 0) > 10_000
    assert peak_growth_mb(figures) < 80, figures.line()
    assert log_problems(pair[0]) == []


async def test_huge_and_deeply_nested_lines(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    """Lines over the 1 MiB limit are refused and their connection closed; 200,000 brackets are a parse
    error; params nested 500 deep are invalid_params. Answering a backlog of cheap refusals used to run a
    whole 64 KiB read's worth of requests between two checkpoints: honest p50 ~590 ms."""
    figures, _ = await attack_and_measure(pair, "huge and nested lines", huge_lines)
    counts = figures.stats.counts
    assert counts.get("cut", 0) > 0 and counts.get("nested lines", 0) > 0 and counts.get("deep lines", 0) > 0
    assert peak_growth_mb(figures) < 80, figures.line()
    assert log_problems(pair[0]) == []


async def test_watchers_that_never_read(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    figures, _ = await attack_and_measure(pair, "silent watchers", silent_watchers)
    assert figures.stats.counts.get("watches", 0) >= 100
    assert peak_growth_mb(figures) < 80, figures.line()
    assert log_problems(pair[0]) == []
