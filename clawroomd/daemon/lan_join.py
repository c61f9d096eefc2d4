"""Joining a room by its id on the LAN, with the host owner's approval (SPEC §13.11).

The guest presents a join request (the room id, no secret) in handshake message 3, so the host knows
the guest's identity key before anything else. A host room takes requests only if it was created with
`lan_join`; for any other room, and for one that does not exist, the answer is the same `unknown_room`,
so a stranger learns nothing it did not already know (it must know the room id to ask at all).

Host (`JoinRequests`): a request for a room that takes them is admitted as a *request connection*: the
host tells the guest `pending`, notifies its owner (the room's notify hook and `clawroom inbox`) with the
short authentication string (SAS) of that connection, and holds it until the owner approves or denies,
or the request expires. Approval binds the room to that identity key, for that room only, in one
transaction (the invite of the room is spent with it); the guest then joins as any bound guest does.

Guest (`Knocks`): asks the peer the owner named, or each peer found on the LAN in turn, shows the SAS
of the connection the host answered `pending` on, and waits for the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..core.errors import CLOSE_INVITE, LocalProtocolError, RemoteProtocolError
from ..core.identity import parse_peer_id, peer_id_for
from ..core.invites import JoinRequest
from ..link import DialFailed, LinkClosed, PeerConnection
from .clock import now_ms
from .errors import ApiError
from .guest_side import GuestSide
from .live import LiveRoom
from .peers import Peers
from .rooms import Rooms

log = logging.getLogger("clawroomd.lan")

MAX_PER_ROOM = 8  # requests waiting for one room (from different guests)
MAX_PENDING = 64  # requests waiting in all
NOTIFY_TIMEOUT_S = 30.0
UNKNOWN_ROOM = "no such room here, or it does not take LAN join requests"


def _refuse(code: str, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(code, message, CLOSE_INVITE)


@dataclass
class Request:
    room_id: str
    peer_key: bytes
    sas: str
    name: str | None
    expires: float  # trio clock
    expires_ms: int
    answer: str | None = None  # approved | denied
    decided: trio.Event = field(default_factory=trio.Event)

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.peer_key)

    def view(self, topic: str) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "topic": topic,
            "peer_id": self.peer_id,
            "name": self.name,  # what the peer advertises on the LAN (a claim): compare the SAS
            "sas": self.sas,
            "expires_ms": self.expires_ms,
        }


class JoinRequests:
    """The host's side: which requests reach the owner, and the owner's decisions."""

    def __init__(
        self,
        rooms: Rooms,
        *,
        ttl: float,
        name_of: Callable[[str], str | None],
        met: Callable[[bytes], None],
        spawn: Callable[..., None],
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.ttl = ttl
        self.name_of = name_of
        self.met = met
        self.spawn = spawn
        self.pending: dict[tuple[str, bytes], Request] = {}
        self.denied: dict[tuple[str, bytes], float] = {}  # refused until (trio clock)

    @staticmethod
    def _open_to(live: LiveRoom | None, key: bytes) -> bool:
        return (
            live is not None and live.role == "host" and bool(live.meta.get("lan_join")) and not live.closed
            and live.peer_key in (None, key)
        )  # fmt: skip

    def _sweep(self) -> None:
        now = trio.current_time()
        for k in [k for k, r in self.pending.items() if r.expires <= now]:
            del self.pending[k]
        for k in [k for k, until in self.denied.items() if until <= now]:
            del self.denied[k]

    def check(self, key: bytes, req: JoinRequest) -> None:
        """During the handshake: admit the request connection or refuse (RemoteProtocolError)."""
        live = self.rooms.lookup(req.room_id)
        if not self._open_to(live, key):
            raise _refuse("unknown_room", UNKNOWN_ROOM)  # alike for a private, taken or missing room
        assert live is not None
        if live.peer_key == key:
            return  # approved already: the connection learns so at once
        self._sweep()
        if (req.room_id, key) in self.denied:
            raise _refuse("join_denied", "the host's owner denied your request to join this room")
        waiting = sum(1 for (room, k) in self.pending if room == req.room_id and k != key)
        if waiting >= MAX_PER_ROOM or len(self.pending) >= MAX_PENDING:
            raise _refuse("too_many_requests", "too many join requests wait for this host; try again later")

    async def serve(self, conn: PeerConnection, req: JoinRequest) -> None:
        """A request connection: `pending`, then the owner's answer (or `expired`), then close."""
        key, room_id = conn.peer_public_key, req.room_id
        live = self.rooms.lookup(room_id)
        if live is None or not self._open_to(live, key):
            await conn.send({"t": "request", "room": room_id, "state": "denied"})
            return
        if live.peer_key != key:
            r = self.pending.get((room_id, key))
            if r is None or r.expires <= trio.current_time():
                r = Request(
                    room_id=room_id, peer_key=key, sas=conn.sas, name=self.name_of(peer_id_for(key)),
                    expires=trio.current_time() + self.ttl, expires_ms=now_ms() + int(self.ttl * 1000),
                )  # fmt: skip
                self.pending[(room_id, key)] = r
                log.info("room %s: LAN join request from %s (SAS %s)", room_id, r.peer_id[:15], r.sas)
                self.spawn(self._notify, live, r)
            else:
                r.sas = conn.sas  # the guest shows the SAS of its newest connection
            expires_s = max(math.ceil(r.expires - trio.current_time()), 1)
            await conn.send({"t": "request", "room": room_id, "state": "pending", "expires_s": expires_s})
            with trio.move_on_at(r.expires):
                async with trio.open_nursery() as race:

                    async def decided() -> None:
                        await r.decided.wait()
                        race.cancel_scope.cancel()

                    async def hung_up() -> None:
                        with contextlib.suppress(LinkClosed):
                            async for _frame in conn:
                                pass  # nothing is expected from the guest while it waits
                        race.cancel_scope.cancel()  # the request stays until it expires

                    race.start_soon(decided)
                    race.start_soon(hung_up)
            if conn.closed is not None:
                return
            if r.answer is None and self.pending.get((room_id, key)) is r:
                del self.pending[(room_id, key)]
                log.info("room %s: the join request from %s expired", room_id, r.peer_id[:15])
        state = "approved" if live.peer_key == key else "denied" if (room_id, key) in self.denied else "expired"
        with contextlib.suppress(LinkClosed):
            await conn.send({"t": "request", "room": room_id, "state": state})

    async def _notify(self, live: LiveRoom, r: Request) -> None:
        argv = live.meta.get("notify")
        if not argv:
            return
        doc = {
            "type": "join_request",
            **r.view(str(live.meta.get("topic", ""))),
            "approve": f"clawroom approve --room {r.room_id} --peer {r.peer_id}",
            "deny": f"clawroom deny --room {r.room_id} --peer {r.peer_id}",
        }
        try:
            with trio.fail_after(NOTIFY_TIMEOUT_S):
                await trio.run_process(argv, stdin=json.dumps(doc).encode(), capture_stdout=True, capture_stderr=True)
        except Exception as err:  # the owner's program: never fatal, the request waits in the inbox
            log.warning("room %s: notify hook failed for a join request (%s)", live.room_id, err)

    # -- the owner's side (local API) ------------------------------------------------------------------

    def inbox(self) -> list[dict[str, Any]]:
        self._sweep()
        out = []
        for r in self.pending.values():
            live = self.rooms.lookup(r.room_id)
            out.append(r.view(str(live.meta.get("topic", "")) if live else ""))
        return out

    def decide(self, room_id: str, peer: str | None, *, approve: bool) -> dict[str, Any]:
        live = self.rooms.get(room_id)
        self._sweep()
        reqs = [r for (room, _), r in self.pending.items() if room == room_id]
        if peer is not None:
            reqs = [r for r in reqs if _names(r, peer)]
        if not reqs:
            raise ApiError(
                "no_request",
                f"no join request{' from ' + peer if peer else ''} waits for room {room_id} "
                "(expired, or never made); `clawroom inbox` lists the waiting ones",
            )
        if len(reqs) > 1:
            who = ", ".join(f"{r.peer_id} (SAS {r.sas})" for r in reqs)
            raise ApiError("conflict", f"{len(reqs)} requests wait for room {room_id}: {who}; pick one with --peer")
        r = reqs[0]
        if approve:
            if live.peer_key not in (None, r.peer_key) or live.closed:
                raise ApiError("conflict", f"room {room_id} already has its guest")
            now = now_ms()
            with self.store.transaction():  # StorageFailed: nothing bound, the request still waits
                self.store.update_room(room_id, peer_key=r.peer_key, now_ms=now)
                self.store.consume_invite(room_id, r.peer_key, now)  # the URL can no longer admit another
            live.peer_key = r.peer_key
            self.met(r.peer_key)
            for k, other in list(self.pending.items()):
                if other.room_id == room_id:
                    del self.pending[k]
                    if other is not r:
                        self.denied[k] = trio.current_time() + self.ttl
                    other.decided.set()
            log.info("room %s: the owner approved %s (SAS %s)", room_id, r.peer_id[:15], r.sas)
        else:
            del self.pending[(room_id, r.peer_key)]
            self.denied[(room_id, r.peer_key)] = trio.current_time() + self.ttl
            r.decided.set()
            log.info("room %s: the owner denied %s", room_id, r.peer_id[:15])
        r.answer = "approved" if approve else "denied"
        return {**r.view(str(live.meta.get("topic", ""))), "answer": r.answer}


def _names(r: Request, which: str) -> bool:
    """`which` is the request's peer id (any case, dashes or not), a prefix of it, or its advertised name."""
    with contextlib.suppress(LocalProtocolError):
        return parse_peer_id(which) == r.peer_id
    flat = which.replace("-", "").upper()
    if len(flat) >= 4 and r.peer_id.replace("-", "").startswith(flat):
        return True
    return r.name is not None and r.name.casefold() == which.strip().casefold()


# ---------------------------------------------------------------------------------------- the guest's side
@dataclass
class Outgoing:
    room_id: str
    peer: str | None
    state: str = "asking"  # asking | pending | approved | joined | denied | expired | failed
    host_peer_id: str | None = None
    host_name: str | None = None
    sas: str | None = None
    expires_ms: int | None = None
    addrs: list[tuple[str, int]] = field(default_factory=list)
    error: ApiError | None = None
    live: LiveRoom | None = None
    answered: trio.Event = field(default_factory=trio.Event)  # pending known, or the end
    done: trio.Event = field(default_factory=trio.Event)

    def view(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "state": self.state,
            "host_peer_id": self.host_peer_id,
            "host_name": self.host_name,
            "sas": self.sas,
            "expires_ms": self.expires_ms,
        }


class Knocks:
    """The guest's side: one outgoing request per room id, run in the daemon's nursery."""

    def __init__(self, side: GuestSide, peers: Peers, *, nursery: trio.Nursery, join_timeout: float = 30.0) -> None:
        self.side = side
        self.peers = peers
        self.nursery = nursery
        self.join_timeout = join_timeout
        self.out: dict[str, Outgoing] = {}

    def start(
        self, room_id: str, peer: str | None, *, label: str, meta: dict[str, Any], on_fail: Callable[[], None]
    ) -> Outgoing:
        o = self.out.get(room_id)
        if o is not None and not o.done.is_set():
            return o
        o = self.out[room_id] = Outgoing(room_id=room_id, peer=peer)
        self.nursery.start_soon(self._run, o, label, meta, on_fail)
        return o

    def inbox(self) -> list[dict[str, Any]]:
        return [o.view() for o in self.out.values() if o.state in ("asking", "pending", "approved")]

    async def _run(self, o: Outgoing, label: str, meta: dict[str, Any], on_fail: Callable[[], None]) -> None:
        try:
            await self._knock(o)
            assert o.host_peer_id is not None
            o.live = await self.side.take_room(
                o.room_id, o.host_peer_id, o.addrs, label=label, meta=meta, timeout=self.join_timeout
            )
            o.state = "joined"
        except ApiError as err:
            o.error = err
            if o.state not in ("denied", "expired"):
                o.state = "failed"
        finally:
            if o.live is None:
                on_fail()
            o.answered.set()
            o.done.set()

    async def _knock(self, o: Outgoing) -> None:
        candidates = self.peers.candidates(o.peer)
        if not candidates:
            raise ApiError(
                "peer_unreachable",
                "no clawroom daemon found on the LAN"
                + ("" if self.peers.discovery_on else " (LAN discovery is off: start clawroomd with --lan)")
                + "; `clawroom peers` lists the ones found. Without the LAN, join with the URL the host's"
                " `clawroom create` printed: clawroom join 'clawroom://join/...' (or --join-url URL)",
            )
        last: str | None = None
        for peer_id, name, addrs in candidates:
            for addr in addrs:
                try:
                    await self._ask(o, peer_id, name, addr, addrs)
                    return
                except LinkClosed as exc:
                    if exc.error_code == "unknown_room":
                        break
                    if exc.error_code == "join_denied":
                        o.state = "denied"
                        denied = {"answer": "denied"}
                        raise ApiError("join_refused", "the host's owner denied your request", denied) from None
                    if exc.error_code == "too_many_requests":
                        busy = "too many join requests wait at that host; try again later"
                        raise ApiError("limit_exceeded", busy) from None
                    last = str(exc)
                except (DialFailed, RemoteProtocolError, OSError) as exc:
                    last = str(exc)
        if o.state == "pending":
            raise ApiError("peer_unreachable", f"the host went away before its owner answered ({last}); ask again")
        where = f"{o.peer!r}" if o.peer else f"any of the {len(candidates)} daemon(s) found on the LAN"
        raise ApiError(
            "unknown_room",
            f"room {o.room_id} is not offered by {where}: check the room id, and that the host created it "
            f"with `clawroom create --lan-join`" + (f" (last error: {last})" if last else ""),
        )

    async def _ask(
        self, o: Outgoing, peer_id: str, name: str, addr: tuple[str, int], addrs: list[tuple[str, int]]
    ) -> None:
        """One request connection; returns once approved. Raises ApiError for a final no, DialFailed if the
        connection ends before an answer."""
        async with self.side.dial(addr, peer_id, invite=JoinRequest(room_id=o.room_id)) as conn:
            o.host_peer_id, o.host_name, o.sas, o.addrs = peer_id, name, conn.sas, list(addrs)
            async for frame in conn:
                state = frame.get("state")
                if frame.get("t") != "request" or frame.get("room") != o.room_id:
                    raise RemoteProtocolError("malformed", "expected the host's answer to the join request")
                if state == "pending":
                    expires_s = frame.get("expires_s")
                    if not isinstance(expires_s, int) or isinstance(expires_s, bool) or not 0 < expires_s <= 86400:
                        raise RemoteProtocolError("malformed", "pending needs expires_s (1..86400)")
                    o.state, o.expires_ms = "pending", now_ms() + expires_s * 1000
                    o.answered.set()
                    log.info("room %s: join request pending at %s (SAS %s)", o.room_id, peer_id[:15], conn.sas)
                    continue
                if state == "approved":
                    o.state = "approved"
                    return
                if state in ("denied", "expired"):
                    o.state = str(state)
                    why = "denied your request" if state == "denied" else "did not approve your request in time"
                    raise ApiError("join_refused", f"the host's owner {why}", {"answer": state})
                raise RemoteProtocolError("malformed", f"unknown join request state {state!r}")
        raise DialFailed(f"{peer_id[:15]} closed the connection before answering the join request")
