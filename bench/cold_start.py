"""`clawroom status` cold start: a fresh interpreter running the CLI against a live daemon, against
`python -c pass` measured in the same run (interleaved), so the ratio is the CLI's own cost.

Run: python bench/cold_start.py [--runs 15]
The CLI is started as its console script does (import clawroomd.cli.main, call main), with this
checkout first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import clawroomd
from clawroomd.testing import DaemonProcess

SRC = str(Path(clawroomd.__file__).resolve().parent.parent)
CLI = "import sys; from clawroomd.cli.main import main; sys.exit(main())"


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def measure(socket: Path, room_id: str, runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": SRC, "CLAWROOM_SOCKET": str(socket)}
    status = [sys.executable, "-c", CLI, "status", "--room", room_id]
    bare = [sys.executable, "-c", "pass"]
    _time(status, env)  # the first run fills the page cache and writes .pyc files
    cli_ms, bare_ms = [], []
    for _ in range(runs):
        cli_ms.append(_time(status, env))
        bare_ms.append(_time(bare, env))
    return {"status_ms": statistics.median(cli_ms), "python_pass_ms": statistics.median(bare_ms), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a = DaemonProcess(Path(tmp) / "a", name="A", log_level="warning").start()
        try:
            room_id = a.call("room.create", topic="cold start", fields=["price"])["room_id"]
            out = measure(a.socket, room_id, args.runs)
        finally:
            a.stop()
    print(f"clawroom status: median {out['status_ms']:.0f} ms; python -c pass: {out['python_pass_ms']:.0f} ms; "
          f"ratio {out['status_ms'] / out['python_pass_ms']:.1f}x (goal <= 150 ms)")


if __name__ == "__main__":
    main()
