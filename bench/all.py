"""Every figure of the speed goals (issue 12) in one run: one table on stdout, the same figures as JSON.

Run from the repository root:  python -m bench [--quick] [--json PATH]
  relay      agent -> agent through two daemons (room.send to the peer's watch notification), p50/p90/p99
             over >= 1,000 messages, both directions, with a bare trio-websocket echo round trip measured
             in the same run and the ratio (bench/relay.py)
  throughput sustained msgs/s with 16 and with 64 rooms ping-ponging at once (bench/relay.py)
  join       room.join p50/p99 and joins/s (bench/joins.py)
  5-turn     a scripted room from room.create to both final_result.json (bench/result_room.py)
  1,000 rooms all open at once, all finish, peak RSS per daemon (bench/rooms.py, fresh daemons)
  cold start `clawroom status` against `python -c pass` (bench/cold_start.py)
Each of those scripts also runs on its own. `--quick` runs every part small (a smoke test, seconds; the
figures mean nothing): tests/test_bench.py runs it so the bench cannot rot.
Absolute figures depend on the machine's load: compare the ratios to the baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from clawroomd.client import Client
from clawroomd.testing import DaemonProcess

from . import cold_start, joins, relay, result_room, rooms


@dataclass(frozen=True)
class Size:
    messages: int
    seconds: float
    joins: int
    result_rooms: int
    rooms: int
    cold_runs: int


FULL = Size(messages=1000, seconds=5.0, joins=300, result_rooms=20, rooms=1000, cold_runs=15)
QUICK = Size(messages=40, seconds=0.3, joins=10, result_rooms=2, rooms=10, cold_runs=2)


def pair(root: Path) -> tuple[DaemonProcess, DaemonProcess]:
    a = DaemonProcess(root / "a", name="A", log_level="warning")
    b = DaemonProcess(root / "b", name="B", log_level="warning")
    a.launch()
    b.launch()
    a.wait_ready()
    b.wait_ready()
    return a, b


def ms_stats(samples: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(samples) * 1000, "p90": relay.pct(samples, 0.9) * 1000,
            "p99": relay.pct(samples, 0.99) * 1000, "n": len(samples)}  # fmt: skip


def measure(size: Size, root: Path, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"size": size.__dict__, "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    a, b = pair(root / "main")
    try:
        log("relay: echo baseline and ping-pong")
        echo = trio.run(relay.echo_baseline, size.messages)
        samples, pp_rate = trio.run(relay.ping_pong, a.socket, b.socket, size.messages)
        out["echo"] = ms_stats(echo)
        out["relay"] = ms_stats(samples)
        out["relay_host_to_guest"] = ms_stats(samples[0::2])
        out["relay_guest_to_host"] = ms_stats(samples[1::2])
        out["ping_pong_msgs_per_s"] = pp_rate
        for n in (16, 64):
            log(f"throughput: {n} rooms")
            out[f"msgs_per_s_{n}_rooms"] = trio.run(relay.parallel, a.socket, b.socket, n, size.seconds)
        log("joins")
        out["join"] = trio.run(joins.measure, a.socket, b.socket, size.joins, size.joins, 8)
        log("5-turn room")
        full, base = trio.run(result_room.run, a, b, size.result_rooms)
        out["five_turn"] = {"p50_ms": statistics.median(full), "max_ms": max(full),
                            "closed_baseline_p50_ms": statistics.median(base)}  # fmt: skip
        log("cold start")
        with Client(a.socket) as c:
            room_id = c.call("room.create", topic="cold start", fields=["price"])["room_id"]
        out["cold_start"] = cold_start.measure(a.socket, room_id, size.cold_runs)
    finally:
        b.stop()
        a.stop()
    log(f"{size.rooms} concurrent rooms (fresh daemons)")
    a, b = pair(root / "rooms")
    try:
        assert a.proc and b.proc
        idle = {"A": rooms.rss_mb(a.proc.pid, "VmRSS"), "B": rooms.rss_mb(b.proc.pid, "VmRSS")}
        r = trio.run(rooms.run, a, b, size.rooms, 32, 8)
        peak = {"A": rooms.rss_mb(a.proc.pid, "VmHWM"), "B": rooms.rss_mb(b.proc.pid, "VmHWM")}
    finally:
        b.stop()
        a.stop()
    out["rooms"] = {**r, "rooms": size.rooms, "idle_rss_mb": idle, "peak_rss_mb": peak}
    return out


def rows(o: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool | None]]:
    """(figure, value, baseline in the same run, ratio, goal, met) for the table."""
    echo, rel = o["echo"], o["relay"]
    out: list[tuple[str, str, str, str, str, bool | None]] = []
    for q, goal in (("p50", 1.0), ("p90", None), ("p99", 5.0)):
        ratio = rel[q] / echo[q]
        out.append((f"relay {q} (both directions, {rel['n']} msgs)", f"{rel[q]:.3f} ms", f"echo {echo[q]:.3f} ms",
                    f"{ratio:.1f}x", f"<= {goal:g} ms, <= 4x" if goal else "", None if goal is None else
                    rel[q] <= goal and ratio <= 4))  # fmt: skip
    for d in ("host_to_guest", "guest_to_host"):
        r = o[f"relay_{d}"]
        out.append((f"  {d.replace('_', ' ')} p50 / p99", f"{r['p50']:.3f} / {r['p99']:.3f} ms", "", "", "", None))
    out.append(("ping-pong, one room", f"{o['ping_pong_msgs_per_s']:.0f} msgs/s",
                f"echo {1000 / echo['p50']:.0f}/s", "", "", None))  # fmt: skip
    for n in (16, 64):
        v = o[f"msgs_per_s_{n}_rooms"]
        out.append((f"sustained, {n} rooms", f"{v:.0f} msgs/s", "", "", ">= 2000", v >= 2000))
    j = o["join"]
    out.append(("room.join p50", f"{j['join_p50_ms']:.2f} ms", "", "", "<= 15 ms", j["join_p50_ms"] <= 15))
    out.append(("room.join p99", f"{j['join_p99_ms']:.2f} ms", "", "", "", None))
    out.append((f"joins/s ({j['concurrency']} at a time)", f"{j['joins_per_s']:.0f}", "", "", ">= 500",
                j["joins_per_s"] >= 500))  # fmt: skip
    f = o["five_turn"]
    base = f["closed_baseline_p50_ms"]
    out.append(("5-turn room, create -> both results", f"{f['p50_ms']:.1f} ms", f"closed {base:.1f} ms",
                f"{f['p50_ms'] / base:.2f}x", "<= 300 ms", f["p50_ms"] <= 300))  # fmt: skip
    r = o["rooms"]
    ok = r["agreed"] == r["rooms"]
    out.append((f"{r['rooms']} rooms: open at once / agreed", f"{r['open_at_once']:.0f} / {r['agreed']:.0f}",
                "", "", "all", ok))  # fmt: skip
    for name, role in (("A", "host"), ("B", "guest")):
        peak, idle = r["peak_rss_mb"][name], r["idle_rss_mb"][name]
        out.append((f"  peak RSS, daemon {name} ({role})", f"{peak:.1f} MB", f"idle {idle:.1f} MB",
                    f"{peak / idle:.1f}x", "<= 150 MB", peak <= 150))  # fmt: skip
    c = o["cold_start"]
    bare = c["python_pass_ms"]
    out.append(("clawroom status cold start", f"{c['status_ms']:.0f} ms", f"python -c pass {bare:.0f} ms",
                f"{c['status_ms'] / bare:.1f}x", "<= 150 ms", c["status_ms"] <= 150))  # fmt: skip
    return out


def table(o: dict[str, Any]) -> str:
    head = ("figure", "value", "baseline (same run)", "ratio", "goal", "met")
    body = [(*r[:5], "" if r[5] is None else ("yes" if r[5] else "NO")) for r in rows(o)]
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(6)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="every part, small: a smoke test (seconds)")
    ap.add_argument("--json", type=Path, metavar="PATH", default=Path("bench-results.json"),
                    help="where to write the figures (default: %(default)s)")  # fmt: skip
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    t0 = time.perf_counter()

    def log(what: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {what}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="clawroom-bench-") as tmp:
        out = measure(size, Path(tmp), log)
    out["took_s"] = time.perf_counter() - t0
    out["goals"] = [{"figure": r[0], "value": r[1], "baseline": r[2], "ratio": r[3], "goal": r[4], "met": r[5]}
                    for r in rows(out)]  # fmt: skip
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    print(f"({'quick: figures meaningless; ' if args.quick else ''}{out['took_s']:.0f} s; figures in {args.json})")
    return 0
