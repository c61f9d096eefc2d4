"""Waking the agent: run the room's configured agent command whenever it is our turn.

The command gets one JSON document on stdin (who we are, the seq and head of the room it describes, the
status card, the transcript, and `owner`: its owner's context, the private facts marked as never to be
shared) and prints one JSON document: `{"text": ..., "moves": [...]}` to send a message,
`{"action": "close"}` to propose or countersign the close, `{"action": "cancel", "reason": ...}`,
`{"action": "ask_owner", "question": ..., "options"?, "field"?, "value"?}` to escalate (the room waits for
the owner; the answer is in the next document's `answers`), or `{"action": "wait"}`. Nobody relays or
nudges: the daemon is the poller.

Replies bind to what they saw (DESIGN §4): a reply is submitted with `expect_seq` = the seq of its
document, so an `accept` takes the value the agent was shown, and a reply the room has moved past is
dropped (logged), never applied to the later state; the agent then runs again on the new state if it is
still our turn. The agent is never run while a move of ours for this room waits in the outbox (the
turn is taken, also after a restart), so no turn gets two replies.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .errors import ApiError, check_seq
from .live import LiveRoom
from .moves import Moves
from .views import status_view

log = logging.getLogger("clawroomd.agent")
MAX_OUTPUT = 256 * 1024
MAX_FAILURES = 3


class AskOwner(Protocol):
    def __call__(
        self, live: LiveRoom, question: object, options: object, field: object, value: object
    ) -> Awaitable[dict[str, Any]]: ...


class AgentRunner:
    """Runs each room's agent command on our turns; `queued_move` tells whether a move of ours for the
    room still waits in the outbox (guest rooms), in which case the turn is already answered."""

    def __init__(
        self,
        moves: Moves,
        *,
        queued_move: Callable[[LiveRoom], str | None],
        timeout: float,
        answers: Callable[[str], list[dict[str, Any]]] = lambda room_id: [],
        ask: AskOwner | None = None,
    ) -> None:
        self.moves = moves
        self.ask = ask  # escalation (Questions.ask): the agent's `ask_owner` action
        self.answers = answers  # the owner's answers to this room's questions (Questions.answers)
        self.queued_move = queued_move
        self.timeout = timeout

    async def run(self, live: LiveRoom) -> None:
        await run_agent_loop(self, live)


async def run_agent_loop(runner: AgentRunner, live: LiveRoom) -> None:
    argv: list[str] = live.meta["agent_command"]
    seen, failures, handled, said = -2, 0, False, -2
    while not live.closed:
        changed = live.changed
        if live.state.seq != seen:  # the room moved on: a fresh turn, with its full retries
            seen, failures, handled = live.state.seq, 0, False
        if not live.our_turn or handled or failures >= MAX_FAILURES:
            await changed.wait()
            continue
        if (queued := runner.queued_move(live)) is not None:
            if said != seen:
                said = seen
                log.info("room %s: our move %s waits for the host; no new reply until it lands", live.room_id, queued)
            await changed.wait()  # the move lands or is refused: both change the room or the outbox
            continue
        try:
            await _one_turn(runner, live, argv)
            handled = True
        except ApiError as err:
            if err.code != "stale_state":
                failures = await _failed(live, err, failures)
                continue
            log.info("room %s: dropped the agent's reply to seq %d: %s", live.room_id, seen, err.message)
            handled = True  # for that seq; if the room moved on, the next pass runs the agent on the new one
        except (OSError, ValueError, subprocess.CalledProcessError, trio.TooSlowError) as err:
            failures = await _failed(live, err, failures)


async def _failed(live: LiveRoom, err: Exception, failures: int) -> int:
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
    return failures


async def _one_turn(runner: AgentRunner, live: LiveRoom, argv: list[str]) -> None:
    base = live.state.seq
    doc = {
        "you": live.role,
        "seq": base,
        "head": live.state.head.hex(),
        "room": status_view(live),
        "transcript": [e.to_json() for e in live.core.log],
        "owner": live.owner_context.for_agent() if live.owner_context is not None else None,
        "answers": runner.answers(live.room_id),
    }
    moves = runner.moves
    with trio.fail_after(runner.timeout):
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
        await moves.submit(live, lambda: moves.close_body(live), expect_seq=base)
    elif action == "cancel":
        await moves.cancel(live, str(reply.get("reason", "the agent gave up")), expect_seq=base)
    elif action == "ask_owner":
        if runner.ask is None:
            raise ValueError("this daemon cannot ask the owner")
        check_seq(base, live.state.seq)  # a question about a state that has moved on is not asked
        await runner.ask(live, reply.get("question"), reply.get("options"), reply.get("field"), reply.get("value"))
    elif action == "send":
        text, raw = reply.get("text", ""), reply.get("moves", [])
        if not isinstance(text, str) or not isinstance(raw, list):
            raise ValueError('the agent\'s reply needs `text` as a string and `moves` as a list')
        await moves.send(live, text, raw, expect_seq=base)
    else:
        raise ValueError(f"unknown agent action {action!r}")
