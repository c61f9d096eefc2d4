"""Delivering a closed room's result to its owner: the room's `deliver_command` (`--deliver CMD` on
create/join, kept in the room's meta like `agent_command`) runs once the result files are written, with
summary.md on stdin and in its environment CLAWROOM_RESULT (final_result.json's path), CLAWROOM_SUMMARY,
CLAWROOM_ROOM_ID and CLAWROOM_DELIVERY_ATTEMPT. Exit 0 is delivered; anything else (or no exit within
ATTEMPT_TIMEOUT) is retried with backoff, up to MAX_ATTEMPTS, then recorded as failed.

The state is `rooms/<id>/delivery.json` (0600, written whole before and after each attempt):
`status` (pending, delivered, failed), `attempts`, `last_error`, `updated_ms`. On restart a result not
yet delivered or failed is delivered then: a crash between the close and the delivery delivers after
restart. A crash *during* a run leaves it pending, so the hook may run again for the same result: it
is at-least-once, and CLAWROOM_DELIVERY_ATTEMPT lets a hook tell a repeat.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import trio

from .clock import now_ms
from .live import LiveRoom
from .results import RESULT_FILE, SUMMARY_FILE, Results
from .store import Store

log = logging.getLogger("clawroomd.delivery")

STATE_FILE = "delivery.json"
MAX_ATTEMPTS = 5
ATTEMPT_TIMEOUT = 60.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
MAX_ERROR = 500


class Delivery:
    def __init__(
        self, store: Store, results: Results, *, backoff: tuple[float, ...] = BACKOFF_S, attempts: int = MAX_ATTEMPTS
    ) -> None:
        self.store = store
        self.results = results
        self.backoff = backoff
        self.max_attempts = attempts

    def state(self, room_id: str) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.store.room_dir(room_id) / STATE_FILE).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _save(self, room_id: str, state: dict[str, Any]) -> None:
        state = {**state, "updated_ms": now_ms()}
        self.store.write_room_file(room_id, STATE_FILE, (json.dumps(state, sort_keys=True, indent=2) + "\n").encode())

    async def _save_retrying(self, room_id: str, state: dict[str, Any]) -> None:
        """The state must be on disk before we go on (or a restart would repeat a delivered result)."""
        while True:
            try:
                self._save(room_id, state)
                return
            except OSError as err:
                log.error("room %s: cannot record the delivery state (%s); retrying", room_id, err)
                await trio.sleep(1.0)

    async def run(self, live: LiveRoom) -> None:
        argv = live.meta.get("deliver_command")
        if not argv:
            return
        await self.results.event(live.room_id).wait()
        state = self.state(live.room_id) or {"status": "pending", "attempts": 0, "last_error": None}
        while state["status"] == "pending":
            attempt = int(state["attempts"]) + 1
            error = await self._attempt(live, argv, attempt)
            if error is None:
                state = {"status": "delivered", "attempts": attempt, "last_error": None}
            else:
                done = attempt >= self.max_attempts
                state = {"status": "failed" if done else "pending", "attempts": attempt, "last_error": error}
                log.warning("room %s: delivery attempt %d failed: %s", live.room_id, attempt, error)
            await self._save_retrying(live.room_id, state)
            if state["status"] == "pending":
                await trio.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
        log.info("room %s: result %s after %d attempt(s)", live.room_id, state["status"], state["attempts"])

    async def _attempt(self, live: LiveRoom, argv: list[str], attempt: int) -> str | None:
        folder = self.store.room_dir(live.room_id)
        env = {
            **os.environ,
            "CLAWROOM_RESULT": str(folder / RESULT_FILE),
            "CLAWROOM_SUMMARY": str(folder / SUMMARY_FILE),
            "CLAWROOM_ROOM_ID": live.room_id,
            "CLAWROOM_DELIVERY_ATTEMPT": str(attempt),
        }
        try:
            summary = (folder / SUMMARY_FILE).read_bytes()
            with trio.fail_after(ATTEMPT_TIMEOUT):
                proc = await trio.run_process(
                    argv, stdin=summary, env=env, capture_stdout=True, capture_stderr=True, check=False
                )
        except OSError as err:
            return f"cannot run {argv[0]!r}: {err.strerror or err}"
        except trio.TooSlowError:
            return f"no exit within {ATTEMPT_TIMEOUT:.0f} s"
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", errors="replace").strip()[-MAX_ERROR:]
            return f"exit {proc.returncode}" + (f": {tail}" if tail else "")
        return None
