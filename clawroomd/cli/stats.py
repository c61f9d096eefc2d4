"""`clawroom stats [--json]`: the product page's operations dashboard, from this daemon's store
(`daemon.stats`, SPEC §15.7, computed by clawroomd.daemon.stats)."""

from __future__ import annotations

from typing import Any

from clawroomd.client import Client

from . import render
from .exits import EXIT_OK
from .options import Config

STATS_HELP = (
    "Show the operations dashboard from this daemon's store: rooms created, active now, average resolution "
    "time, delivery rate, average turns, rooms by result."
)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.1f}h"


def stats_text(s: dict[str, Any]) -> str:
    rate = s["delivery_rate"]
    tiles = [
        (str(s["rooms_created"]), "Rooms Created"),
        (str(s["active_now"]), "Active Now"),
        (_seconds(s["avg_resolution_s"]), "Avg Resolution"),
        ("-" if rate is None else f"{rate * 100:.1f}%", "Delivery Rate"),
        ("-" if s["avg_turns"] is None else f"{s['avg_turns']:.1f}", "Avg Turns"),
    ]
    d = s["delivery"]
    by_status = " · ".join(f"{render.safe(status)} {n}" for status, n in s["by_status"].items()) or "none closed yet"
    return "\n".join(
        [
            "Operations Dashboard",
            "",
            *(f"{value:>10}  {label}" for value, label in tiles),
            "",
            f"Rooms: {s['rooms_total']} ({s['rooms_created']} created here, {s['rooms_joined']} joined as guest) · "
            f"{s['active_now']} active · {s['invited_now']} waiting for their guest · {s['closed']} closed",
            f"Results: {by_status}",
            f"Delivery: {d['delivered']} delivered · {d['pending']} pending · {d['failed']} failed "
            f"(of {s['closed']} closed; {d['with_hook']} with a --deliver hook)",
        ]
    )


def cmd_stats(cfg: Config) -> int:
    with Client(cfg.socket, timeout=60.0) as c:
        result = c.call("daemon.stats")
    print(render.json_line(result) if cfg.json else stats_text(result), flush=True)
    return EXIT_OK
