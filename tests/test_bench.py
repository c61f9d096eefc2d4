"""`python -m bench --quick` runs every part of the bench end to end (real daemons), so it cannot rot.
Its figures mean nothing at this size; the test checks the run completes, every room agrees, and the JSON
carries every figure the table prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_quick_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["relay"]["n"] == figures["size"]["messages"] > 0
    assert figures["relay"]["p50"] > 0 and figures["echo"]["p50"] > 0
    assert figures["msgs_per_s_16_rooms"] > 0 and figures["msgs_per_s_64_rooms"] > 0
    assert figures["join"]["joins_per_s"] > 0
    assert figures["rooms"]["agreed"] == figures["rooms"]["rooms"]
    assert set(figures["rooms"]["peak_rss_mb"]) == {"A", "B"}
    assert figures["cold_start"]["status_ms"] > 0
    for row in figures["goals"]:
        assert row["figure"].strip() in run.stdout
