"""Waking the agent: run the room's configured agent command whenever it is our turn.

The command gets one JSON document on stdin (the room's status card, its transcript, and who we are)
and prints one JSON document: `{"text": ..., "moves": [...]}` to send a message, `{"action": "close"}`
to propose or countersign the close, `{"action": "cancel", "reason": ...}`, or `{"action": "wait"}`.
Nobody relays or nudges: the daemon is the poller.
"""

from __future__ import annotations

import json
import logging
import subprocess
from typing import TYPE_CHECKING, Any

import trio

from .errors import ApiError
from .live import LiveRoom
from .views import status_view

if TYPE_CHECKING:
    from .supervisor import Supervisor

log = logging.getLogger("clawroomd.agent")
AGENT_TIMEOUT_S = 120.0
MAX_OUTPUT = 256 * 1024
MAX_FAILURES = 3


async def run_agent_loop(sup: Supervisor, live: LiveRoom) -> None:
    argv: list[str] = live.meta["agent_command"]
    seen, failures, handled = -2, 0, False
    while not live.closed:
        changed = live.changed
        if live.state.seq != seen:  # the room moved on: a fresh turn, with its full retries
            seen, failures, handled = live.state.seq, 0, False
        if live.our_turn and not handled and failures < MAX_FAILURES:
            try:
                await _one_turn(sup, live, argv)
                handled = True
            except (ApiError, OSError, ValueError, subprocess.CalledProcessError, trio.TooSlowError) as err:
                failures += 1
                last = failures >= MAX_FAILURES
                log.warning(
                    "room %s: agent command failed (%s); %s",
                    live.room_id,
                    err,
                    "giving up until the room changes" if last else "will retry",
                )
                if not last:
                    await trio.sleep(min(2.0 * failures, 10))
                    continue
        await changed.wait()


async def _one_turn(sup: Supervisor, live: LiveRoom, argv: list[str]) -> None:
    doc = {
        "you": live.role,
        "room": status_view(live),
        "transcript": [e.to_json() for e in live.core.log],
    }
    with trio.fail_after(float(sup.tuning.get("agent_timeout", AGENT_TIMEOUT_S))):
        proc = await trio.run_process(
            argv, stdin=json.dumps(doc).encode(), capture_stdout=True, capture_stderr=True, check=True
        )
    out = proc.stdout[:MAX_OUTPUT].decode("utf-8", errors="replace").strip()
    reply: Any = json.loads(out or "{}")
    if not isinstance(reply, dict):
        raise ValueError("the agent command must print a JSON object")
    action = reply.get("action", "send")
    if action == "wait":
        return
    if action == "close":
        await sup.submit(live, lambda: sup.close_body(live))
    elif action == "cancel":
        await sup.cancel(live, str(reply.get("reason", "the agent gave up")))
    elif action == "send":
        params = {"room_id": live.room_id, "text": reply.get("text", ""), "moves": reply.get("moves", [])}
        await sup.api.room_send(params, None)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown agent action {action!r}")
