"""The composition root: builds the daemon's parts and hands each only the narrow thing it needs.

    Rooms (registry + the one commit path) ── store, identity
    HostSide (peer listener, guest feeds, deadlines) ── rooms
    GuestSide (links to hosts, joins, outbox) ── rooms
    Moves (our create/send/close/cancel) ── rooms, HostSide.forward, GuestSide.submit
    AgentRunner ── Moves, GuestSide.queued_move
    OwnerContexts (profiles, each room's owner_context.json) ── store, Rooms.lookup
    Questions (escalation: pending_question.json, answers.json) ── store, Moves.submit
    OwnerChecks (pending question, provenance, limits, leak guard: Moves.check_outgoing) ── the above
    Api (local API methods) ── rooms, Moves, GuestSide.join, ContextMethods(OwnerContexts), StatsMethods(store), LanApi
    Peers (LAN sightings, met peers) ── store; Discovery (mDNS, with --lan) ── Peers.seen/gone
    JoinRequests (host: LAN join requests) ── rooms, Peers; HostSide.check_request/serve_request
    Knocks (guest: asking a LAN host by room id) ── GuestSide.dial/take_room, Peers.candidates

Nothing below this module knows the others exist beyond the callables it was given, so the package has
no import loop and no part reaches into another's attributes.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

import trio

from ..core.errors import RemoteProtocolError
from ..link import DialFailed, LinkClosed
from .agent_runner import AgentRunner
from .api import Api
from .context_api import ContextMethods
from .context_store import OwnerContexts
from .delivery import Delivery
from .guest_side import GuestSide
from .host_side import HostSide
from .lan_api import LanApi
from .lan_join import JoinRequests, Knocks
from .leak_check import LeakCheck
from .live import LiveRoom
from .moves import Moves
from .owner_checks import OwnerChecks
from .peers import Peers
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

PROBE_TIMEOUT = 5.0  # s to confirm a stale LAN peer by dialing it
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
        self.peers = Peers(store, own_peer_id=identity.peer_id, stale_after=tuning.lan_stale_after)
        self.requests = JoinRequests(
            self.rooms, ttl=tuning.join_request_ttl, name_of=self.peers.name_of, met=self.peers.met,
            spawn=nursery.start_soon,
        )  # fmt: skip
        self.host_side.check_request = self.requests.check
        self.host_side.serve_request = self.requests.serve
        self.host_side.on_met = self.guest_side.on_met = self.peers.met
        self.guest_side.lan_addrs = self.peers.addrs
        self.knocks = Knocks(self.guest_side, self.peers, nursery=nursery)
        self.lan_info: dict[str, Any] = {"enabled": config.lan}
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
            lan=LanApi(self.peers, self.requests, self.knocks, info=lambda: dict(self.lan_info)),
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
        if self.config.lan:
            self._start_lan(bound[0], bound[1])
        task_status.started(self.listen)

    def _start_lan(self, host: str, port: int) -> None:
        """Discovery on the chosen interfaces (NoInterface, an OSError: cannot start), and the aging of
        what it finds. zeroconf is imported only here."""
        from ..lan.interfaces import choose
        from ..lan.mdns import Discovery

        chosen = choose(self.config.lan_interfaces)
        advertised = [i.address for i in chosen] if host in ("0.0.0.0", "::") else [host]
        name = self.config.lan_name or socket.gethostname()
        discovery = Discovery(
            peer_id=self.rooms.identity.peer_id, name=name, port=port, interfaces=chosen, advertised=advertised,
            seen=self.peers.seen, gone=self.peers.gone,
        )  # fmt: skip
        self.peers.discovery_on = True
        self.lan_info.update(name=name, interfaces=[f"{i.name} {i.address}" for i in chosen], advertised=advertised)
        self.nursery.start_soon(self._run_discovery, discovery)
        self.nursery.start_soon(self.peers.age, self._probe)

    async def _run_discovery(self, discovery: Any) -> None:
        try:
            await discovery.run()
        except OSError as err:  # no multicast on those interfaces: the rest of the daemon works on
            log.error("LAN discovery failed and is off: %s", err)
            self.peers.discovery_on = False
            self.lan_info["error"] = str(err)

    async def _probe(self, peer_id: str, addrs: list[tuple[str, int]]) -> bool:
        """Is `peer_id` really at one of `addrs`? It is if it completes the handshake as itself (it then
        refuses us with unknown_peer unless a room binds us: either way it proved its identity)."""
        for addr in addrs:
            try:
                async with self.guest_side.dial(addr, peer_id, timeout=PROBE_TIMEOUT):
                    return True
            except LinkClosed as exc:
                if exc.error_code == "unknown_peer":
                    return True
            except (DialFailed, RemoteProtocolError, OSError):
                pass
        return False

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
