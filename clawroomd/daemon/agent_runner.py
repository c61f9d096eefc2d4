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

A reply the daemon refuses (`leak_blocked`, `needs_owner_approval`, `not_your_turn`, ...) is told to the
next run on the same state (`refused`: code, message and the reply), at once, within the same
MAX_FAILURES runs per state; the document also says how long the run has (`time_left_s`, agent_turn.py).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .agent_turn import time_left_s
from .clock import mono_ms
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
        self.envs: dict[str, dict[str, str]] = {}  # room id -> agent_env (agent_turn.py): memory only

    def set_env(self, room_id: str, env: dict[str, str] | None) -> None:
        if env is None:
            self.envs.pop(room_id, None)
        else:
            self.envs[room_id] = env

    async def run(self, live: LiveRoom) -> None:
        try:
            await run_agent_loop(self, live)
        finally:
            self.envs.pop(live.room_id, None)


async def run_agent_loop(runner: AgentRunner, live: LiveRoom) -> None:
    argv: list[str] = live.meta["agent_command"]
    seen, failures, handled, said = -2, 0, False, -2
    refused: dict[str, Any] | None = None  # the daemon's refusal of the last reply to this seq
    began = mono_ms()
    while not live.closed:
        changed = live.changed
        if live.state.seq != seen:  # the room moved on: a fresh turn, with its full retries
            seen, failures, handled, refused, began = live.state.seq, 0, False, None, mono_ms()
        if not live.our_turn or handled or failures >= MAX_FAILURES:
            await changed.wait()
            continue
        if (queued := runner.queued_move(live)) is not None:
            if said != seen:
                said = seen
                log.info("room %s: our move %s waits for the host; no new reply until it lands", live.room_id, queued)
            await changed.wait()  # the move lands or is refused: both change the room or the outbox
            continue
        turn = Turn(began_ms=began, attempt=failures + 1, refused=refused)
        try:
            await _one_turn(runner, live, argv, turn)
            handled = True
        except ApiError as err:
            if err.code != "stale_state":
                refused = {"code": err.code, "message": err.message, "reply": turn.reply}
                failures = await _failed(live, err, failures, pause=False)  # the next run is told why
                continue
            log.info("room %s: dropped the agent's reply to seq %d: %s", live.room_id, seen, err.message)
            handled = True  # for that seq; if the room moved on, the next pass runs the agent on the new one
        except (OSError, ValueError, subprocess.CalledProcessError, trio.TooSlowError) as err:
            failures = await _failed(live, err, failures)


class Turn:
    """One run's facts beyond the room: when this state began, which attempt, the last refusal; and
    the reply it printed (for the next run's `refused`)."""

    def __init__(self, *, began_ms: int, attempt: int, refused: dict[str, Any] | None) -> None:
        self.began_ms, self.attempt, self.refused = began_ms, attempt, refused
        self.reply: Any = None


async def _failed(live: LiveRoom, err: Exception, failures: int, *, pause: bool = True) -> int:
    failures += 1
    last = failures >= MAX_FAILURES
    log.warning(
        "room %s: agent command failed (%s); %s",
        live.room_id,
        _why(err),
        "giving up until the room changes" if last else "will retry",
    )
    if pause and not last:
        await trio.sleep(min(2.0 * failures, 10))
    return failures


def _why(err: Exception) -> str:
    """The error, and for a command that exited non-zero the last line it wrote to stderr (its reason)."""
    if isinstance(err, subprocess.CalledProcessError) and err.stderr:
        lines = bytes(err.stderr[-2000:]).decode("utf-8", errors="replace").strip().splitlines()
        if lines:
            return f"exit status {err.returncode}: {lines[-1].encode('unicode_escape').decode()[:500]}"
    return str(err)


async def _one_turn(runner: AgentRunner, live: LiveRoom, argv: list[str], turn: Turn) -> None:
    base = live.state.seq
    doc = {
        "you": live.role,
        "seq": base,
        "head": live.state.head.hex(),
        "room": status_view(live),
        "transcript": [e.to_json() for e in live.core.log],
        "owner": live.owner_context.for_agent() if live.owner_context is not None else None,
        "answers": runner.answers(live.room_id),
        "attempt": turn.attempt,
        "refused": turn.refused,
        "time_left_s": time_left_s(live, turn_began_ms=turn.began_ms, cap_s=runner.timeout),
    }
    moves = runner.moves
    extra = runner.envs.get(live.room_id)
    with trio.fail_after(runner.timeout):
        proc = await trio.run_process(
            argv,
            stdin=json.dumps(doc).encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=True,
            env={**os.environ, **extra} if extra else None,
        )
    out = proc.stdout[:MAX_OUTPUT].decode("utf-8", errors="replace").strip()
    reply: Any = json.loads(out or "{}")
    if not isinstance(reply, dict):
        raise ValueError("the agent command must print a JSON object")
    turn.reply = reply
    action = reply.get("action", "send")
    log.debug("room %s: the agent command answered seq %d with %r", live.room_id, base, str(action)[:40])
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
