"""The peers this daemon knows: seen on the LAN (discovery) and/or met (a room binds us together).

A LAN sighting is a claim: anyone can advertise any peer id, so the table only says where a daemon
*said* it is; every connection still proves the identity in its handshake. A daemon killed without a
goodbye leaves its records behind (mDNS only removes them when their TTL runs out), so a peer that
we have had no news of for `stale_after` seconds is dialed: one that completes the handshake as that
peer id is `up` again, one that does not answer as itself at any address is `gone` (and not used to
find hosts) until it is seen or answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..core.errors import LocalProtocolError
from ..core.identity import parse_peer_id, peer_id_for
from ..lan.mdns import Sighting
from .clock import now_ms
from .errors import ApiError
from .store import PeerRow, StorageFailed, Store

log = logging.getLogger("clawroomd.peers")

MAX_LAN_PEERS = 256  # LAN peers tracked at once (a LAN flooded with adverts cannot grow the table further)
RECHECK_GONE = 4  # a gone peer still advertised is dialed again after this many stale periods

# (peer id, addresses) -> True if a daemon at one of them proved it is that peer id
Probe = Callable[[str, list[tuple[str, int]]], Awaitable[bool]]


@dataclass
class LanPeer:
    name: str
    addrs: list[tuple[str, int]]
    service: str
    checked: float = field(default_factory=trio.current_time)  # our clock, last news or confirmation
    up: bool = True


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Peers:
    def __init__(self, store: Store, *, own_peer_id: str, stale_after: float) -> None:
        self.store = store
        self.own_peer_id = own_peer_id
        self.stale_after = stale_after
        self.lan: dict[str, LanPeer] = {}  # peer id -> what discovery told us this run
        self.discovery_on = False
        self.changed = trio.Event()

    def _bump(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def _write(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except StorageFailed as err:  # the peers table is a convenience: never fatal
            log.warning("could not record %s: %s", what, err.reason)

    # -- from discovery ------------------------------------------------------------------------------

    def seen(self, s: Sighting) -> None:
        if s.peer_id not in self.lan and len(self.lan) >= MAX_LAN_PEERS:
            log.warning("LAN: more than %d peers advertised; ignoring %s", MAX_LAN_PEERS, s.peer_id[:15])
            return
        if s.peer_id not in self.lan or not self.lan[s.peer_id].up:
            log.info("LAN: found %s %r at %s", s.peer_id[:15], s.name, ", ".join(format_addr(*a) for a in s.addrs))
        self.lan[s.peer_id] = LanPeer(name=s.name, addrs=list(s.addrs), service=s.service)
        addrs = [format_addr(*a) for a in s.addrs]
        self._write("a LAN peer", lambda: self.store.see_peer(s.peer_id, name=s.name, addrs=addrs, now_ms=now_ms()))
        self._bump()

    def gone(self, service: str) -> None:
        """The peer said goodbye (or its records ran out)."""
        for peer_id, p in self.lan.items():
            if p.service == service:
                self._mark(peer_id, p, up=False)
                log.info("LAN: %s %r left", peer_id[:15], p.name)

    def _mark(self, peer_id: str, p: LanPeer, *, up: bool) -> None:
        p.up, p.checked = up, trio.current_time()
        state = "up" if up else "gone"
        self._write("a LAN peer", lambda: self.store.set_peer_state(peer_id, state, now_ms() if up else None))
        self._bump()

    async def age(self, probe: Probe) -> None:
        """Dial peers we have had no news of for `stale_after`; runs until cancelled."""
        while True:
            now = trio.current_time()
            due = [
                (pid, p) for pid, p in self.lan.items()
                if now - p.checked >= self.stale_after * (1 if p.up else RECHECK_GONE)
            ]  # fmt: skip
            async with trio.open_nursery() as nursery:
                for peer_id, p in due:
                    nursery.start_soon(self._confirm, probe, peer_id, p)
            await trio.sleep(max(self.stale_after / 4, 0.05))

    async def _confirm(self, probe: Probe, peer_id: str, p: LanPeer) -> None:
        alive = await probe(peer_id, list(p.addrs))
        if alive != p.up:
            log.info("LAN: %s %r %s", peer_id[:15], p.name, "answers again" if alive else "does not answer: gone")
        self._mark(peer_id, p, up=alive)

    # -- for joins -----------------------------------------------------------------------------------

    def addrs(self, peer_id: str) -> list[tuple[str, int]]:
        """Where discovery last saw `peer_id`, if it is up (empty otherwise)."""
        p = self.lan.get(peer_id)
        return list(p.addrs) if p is not None and p.up else []

    def candidates(self, which: str | None) -> list[tuple[str, str, list[tuple[str, int]]]]:
        """(peer id, name, addresses) of the LAN peers to ask for a room: the one `which` names (a peer id,
        or a name, case-insensitive), else every peer up, most recently confirmed first."""
        up = sorted(((pid, p) for pid, p in self.lan.items() if p.up), key=lambda x: -x[1].checked)
        if which is None:
            return [(pid, p.name, list(p.addrs)) for pid, p in up]
        try:
            wanted = parse_peer_id(which)
        except LocalProtocolError:
            hits = [(pid, p) for pid, p in up if p.name.casefold() == which.strip().casefold()]
        else:
            hits = [(pid, p) for pid, p in up if pid == wanted]
        if len(hits) > 1:
            ids = ", ".join(pid for pid, _ in hits)
            raise ApiError("conflict", f"{len(hits)} peers on the LAN are called {which!r} ({ids}); name one by its id")
        if not hits:
            raise ApiError(
                "peer_unreachable",
                f"no peer {which!r} is on the LAN now"
                + ("" if self.discovery_on else " (LAN discovery is off: start clawroomd with --lan)")
                + "; `clawroom peers` lists the ones found",
            )
        return [(pid, p.name, list(p.addrs)) for pid, p in hits]

    def met(self, peer_key: bytes) -> None:
        peer_id = peer_id_for(peer_key)
        self._write("a peer met", lambda: self.store.met_peer(peer_id, peer_key, now_ms()))

    def name_of(self, peer_id: str) -> str | None:
        p = self.lan.get(peer_id)
        if p is not None:
            return p.name
        row = self.store.get_peer(peer_id)
        return row.name if row is not None else None

    def view(self) -> list[dict[str, object]]:
        return [self._row(r) for r in self.store.list_peers()]

    def _row(self, r: PeerRow) -> dict[str, object]:
        p = self.lan.get(r.peer_id)
        state = ("up" if p.up else "gone") if p is not None else ("unseen" if r.state else None)
        return {
            "peer_id": r.peer_id,
            "name": r.name,
            "addrs": r.addrs,
            "first_seen_ms": r.first_seen_ms,
            "last_seen_ms": r.last_seen_ms,
            "met": r.met_ms is not None,
            "met_ms": r.met_ms,
            "lan": state,  # up | gone | unseen (not seen since this daemon started) | None (never on the LAN)
        }
