"""`daemon.stats`: the operations dashboard (`clawroom stats`) computed from the store.

Read-only by construction: the queries run on a connection of their own opened with SQLite's `mode=ro`
(and `query_only`), in a worker thread, so a large store neither blocks the event loop nor can be changed
by this code. WAL lets it read beside the daemon's writer; it sees committed rows only.

Definitions (SPEC §15.7):
- a room is *closed* once its row holds a result (closed by both sides, or ended locally by a guest);
  *active* while open in phase active/delivering/closing; *invited* while its guest has not joined;
- resolution time and turns come from the stored result (`duration_ms`: first to last event, on the
  events' own timestamps; `turns`: messages), averaged over closed rooms that have them;
- a closed room's result is *delivered* once its result files are written and, if the room has a
  delivery hook (`deliver_command`), the hook has exited 0 (`delivery.json`, clawroomd.daemon.delivery);
  *failed* when the hook gave up; *pending* otherwise. The delivery rate is delivered / closed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .delivery import STATE_FILE
from .errors import ApiError
from .results import RESULT_FILE, SUMMARY_FILE
from .store import Store

if TYPE_CHECKING:
    from .rpc import Session

_TOTALS = """
SELECT COUNT(*),
       COALESCE(SUM(role = 'host'), 0),
       COALESCE(SUM(role = 'guest'), 0),
       COALESCE(SUM(result IS NULL AND phase IN ('active', 'delivering', 'closing')), 0),
       COALESCE(SUM(result IS NULL AND phase IN ('new', 'invited')), 0),
       COALESCE(SUM(result IS NOT NULL), 0),
       AVG(json_extract(result, '$.duration_ms')),
       AVG(json_extract(result, '$.turns'))
FROM rooms
"""
_BY_STATUS = """
SELECT COALESCE(json_extract(result, '$.status'), 'unknown'), COUNT(*)
FROM rooms WHERE result IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1
"""
_CLOSED = "SELECT room_id, json_extract(meta, '$.deliver_command') IS NOT NULL FROM rooms WHERE result IS NOT NULL"


def _delivery(folder: Path, hooked: bool) -> str:
    """delivered, pending or failed: one closed room's result, as its owner got it."""
    if not ((folder / RESULT_FILE).exists() and (folder / SUMMARY_FILE).exists()):
        return "pending"
    if not hooked:
        return "delivered"
    try:
        state = json.loads((folder / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return "pending"  # not run yet
    status = state.get("status") if isinstance(state, dict) else None
    return status if status in ("delivered", "failed") else "pending"


def compute_stats(db_path: Path, rooms_dir: Path) -> dict[str, Any]:
    """The dashboard from the database at `db_path` (opened read-only) and the room folders in `rooms_dir`."""
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA query_only = ON")
        total, hosted, joined, active, invited, closed, avg_ms, avg_turns = db.execute(_TOTALS).fetchone()
        by_status = {str(status): int(n) for status, n in db.execute(_BY_STATUS)}
        rows = db.execute(_CLOSED).fetchall()
    finally:
        db.close()
    delivery = {"delivered": 0, "pending": 0, "failed": 0, "with_hook": 0}
    for room_id, hooked in rows:
        delivery[_delivery(rooms_dir / room_id, bool(hooked))] += 1
        delivery["with_hook"] += bool(hooked)
    return {
        "rooms_total": total,
        "rooms_created": hosted,
        "rooms_joined": joined,
        "active_now": active,
        "invited_now": invited,
        "closed": closed,
        "avg_resolution_s": None if avg_ms is None else round(avg_ms / 1000, 3),
        "avg_turns": None if avg_turns is None else round(avg_turns, 2),
        "delivery_rate": round(delivery["delivered"] / closed, 4) if closed else None,
        "delivery": delivery,
        "by_status": by_status,
    }


class StatsMethods:
    """`daemon.stats` over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.methods: dict[str, Callable[[dict[str, Any], Session], Awaitable[Any]]] = {
            "daemon.stats": self.daemon_stats,
        }

    async def daemon_stats(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        if params:
            raise ApiError("invalid_params", f"daemon.stats takes no parameters, not {', '.join(sorted(params))}")
        db_path, rooms_dir = self.store.db_path, self.store.state_dir / "rooms"
        try:
            return await trio.to_thread.run_sync(compute_stats, db_path, rooms_dir)
        except sqlite3.Error as err:
            raise ApiError("storage_failed", f"cannot read the statistics from {db_path}: {err}") from None
