"""The composition root: builds the daemon's parts and hands each only the narrow thing it needs.

    Rooms (registry + the one commit path) ── store, identity
    HostSide (peer listener, guest feeds, deadlines) ── rooms
    GuestSide (links to hosts, joins, outbox) ── rooms
    Moves (our create/send/close/cancel) ── rooms, HostSide.forward, GuestSide.submit
    AgentRunner ── Moves, GuestSide.queued_move
    OwnerContexts (profiles, each room's owner_context.json) ── store, Rooms.lookup
    Questions (escalation: pending_question.json, answers.json) ── store, Moves.submit
    OwnerChecks (pending question, provenance, limits, leak guard: Moves.check_outgoing) ── the above
    Api (local API methods) ── rooms, Moves, GuestSide.join, ContextMethods(OwnerContexts), StatsMethods(store)

Nothing below this module knows the others exist beyond the callables it was given, so the package has
no import loop and no part reaches into another's attributes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from .agent_runner import AgentRunner
from .api import Api
from .context_api import ContextMethods
from .context_store import OwnerContexts
from .delivery import Delivery
from .guest_side import GuestSide
from .host_side import HostSide
from .leak_check import LeakCheck
from .live import LiveRoom
from .moves import Moves
from .owner_checks import OwnerChecks
from .questions import Questions
from .results import Results
from .rooms import Rooms
from .stats import StatsMethods

if TYPE_CHECKING:
    from ..core.identity import Identity
    from .config import DaemonConfig
    from .rpc import Session
    from .store import Store

log = logging.getLogger("clawroomd")

CHECKPOINT_INTERVAL = 0.5  # seconds between WAL checkpoints in a worker thread (when something was committed)


class Daemon:
    """One daemon's parts, wired; `start` restores the rooms and binds the peer listener."""

    def __init__(
        self, *, config: DaemonConfig, store: Store, identity: Identity, static_key: bytes, nursery: trio.Nursery
    ) -> None:
        self.config = config
        self.store = store
        self.nursery = nursery
        self.listen: list[str] = []
        tuning = config.tuning
        self.rooms = Rooms(store, identity)
        self.host_side = HostSide(self.rooms, identity=identity, static_key=static_key, tuning=tuning)
        self.guest_side = GuestSide(
            self.rooms, identity=identity, static_key=static_key, tuning=tuning, nursery=nursery
        )
        self.contexts = OwnerContexts(store, self.rooms.lookup)
        self.leaks = LeakCheck(self.contexts.private_facts)
        self.moves = Moves(
            self.rooms,
            identity,
            forward=self.host_side.forward,
            guest_submit=self.guest_side.submit,
        )
        self.questions = Questions(store, self.moves, timeout_s=tuning.question_timeout)
        self.questions.spawn = nursery.start_soon
        self.moves.check_outgoing = OwnerChecks(
            lookup=self.rooms.lookup,
            questions=self.questions,
            confirmed_facts=self.contexts.confirmed_facts,
            limits=self.contexts.limits,
            leaks=self.leaks,
        )
        self.agents = AgentRunner(
            self.moves,
            queued_move=self.guest_side.queued_move,
            timeout=tuning.agent_timeout,
            answers=self.questions.answers,
            ask=self.questions.ask,
        )
        self.results = Results(store, questions=self.questions.for_summary)
        self.delivery = Delivery(store, self.results)
        self.api = Api(
            self.rooms,
            self.moves,
            join=self.guest_side.join,
            contexts=ContextMethods(self.contexts, self.rooms),
            leaks=self.leaks,
            questions=self.questions,
            identity=identity,
            config=config,
            listen=lambda: list(self.listen),
            results=self.results,
            delivery=self.delivery,
            agent_env=self.agents.set_env,
        )
        self.api.methods.update(StatsMethods(store).methods)  # daemon.stats: read-only, on its own connection
        self.rooms.on_open = self._start_room_tasks

    async def start(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        self.rooms.restore()  # before listening: a guest reconnecting at once must find its room
        host, port = self.config.listen_host, self.config.listen_port
        bound = await self.nursery.start(self.host_side.serve, host, port)
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.listen = [f"{shown}:{bound[1]}"]
        self.store.defer_checkpoints()
        self.nursery.start_soon(self._maintain_storage)
        task_status.started(self.listen)

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        return await self.api.handle(method, params, session)

    def _start_room_tasks(self, live: LiveRoom) -> None:
        self.contexts.attach(live)  # before its agent can run: the agent reads its owner's context
        self.questions.attach(live)  # and a question pending before a restart still holds its moves
        self.nursery.start_soon(self.results.run, live)  # writes the result on close (or now, if missing)
        self.nursery.start_soon(self.delivery.run, live)  # then runs the owner's --deliver hook, if any
        if live.closed:
            return
        self.nursery.start_soon(self.questions.watch, live)
        if live.role == "host":
            self.nursery.start_soon(self.host_side.deadlines, live)
        else:
            self.guest_side.attach(live)
        if live.meta.get("agent_command"):
            self.nursery.start_soon(self.agents.run, live)

    async def _maintain_storage(self) -> None:
        """Keep SQLite's checkpoints (and their fsyncs) off the event path (see Store.defer_checkpoints),
        and while some write is failing, retry it: once the disk works again the store says so, and the
        guest links that backed off because of it redial at once."""
        done = self.store.commits
        while True:
            await trio.sleep(CHECKPOINT_INTERVAL)
            failing = not self.store.healthy
            if self.store.commits != done or failing:
                done = self.store.commits
                self.store.note_checkpoint(await trio.to_thread.run_sync(self.store.checkpoint))
            if failing and self.store.recover():
                self.guest_side.wake_links()
