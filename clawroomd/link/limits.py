"""How much of the host a peer can hold: connections still in their handshake (in total and per source
address), admitted links per peer identity, and the file descriptors all of them come out of.

A connection is *pending* from accept() until its handshake and admission are done, at most
`handshake_timeout` seconds. When the pending table is full, a new connection pushes out the oldest
pending connection of the source holding the most slots (when its own source holds none, or two fewer),
else it is refused: a flood cannot starve a peer dialling from an address of its own. A source already at
`max_pending_per_source` is refused at once. An
admitted peer identity keeps at most `max_links_per_peer` links: a new one replaces its oldest (a guest
redialling after a network change is normal; its old link may not be dead yet on our side).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import resource
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .connection import NORMAL_CLOSE, PeerConnection, close_reason
from .session import HANDSHAKE_TIMEOUT

log = logging.getLogger("clawroomd.link")

FD_SHARE = 2  # peer connections may use at most 1/FD_SHARE of the soft descriptor limit
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})  # accept() out of room
ACCEPT_PAUSE_S = 0.25  # how long a listener stops accepting after accept() failed with one of those


@dataclass(frozen=True, kw_only=True)
class PeerLimits:
    """The listener's caps ([tuning] in the daemon's config; SPEC §13.10)."""

    handshake_timeout: float = HANDSHAKE_TIMEOUT  # seconds from accept() to an admitted link
    max_pending: int = 128  # connections not yet admitted, in total
    max_pending_per_source: int = 8  # of those, from one IPv4 address or one IPv6 /64
    max_links_per_peer: int = 8  # admitted links per peer identity; a new one replaces the oldest
    max_connections: int = 4096  # pending and admitted together (also at most half the fd limit)

    def connection_cap(self) -> int:
        """`max_connections`, but never more than a share of the process's descriptor limit, read now
        (it can change at run time), so the local API, the store and agents always have descriptors."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft // FD_SHARE))


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (distributions default the soft one to 1024); returns
    the soft limit now in force. Called once at daemon start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # the kernel refuses an infinite RLIMIT_NOFILE: use its ceiling
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            return soft
        log.debug("open-file limit raised from %d to %d", soft, target)
        return target
    return soft


def source_of(address: object) -> str:
    """The key a pending connection is counted under: its IPv4 address, or the /64 of an IPv6 one
    (one host usually has a whole /64). IPv4-mapped IPv6 counts as the IPv4 address."""
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, str) and ":" not in host:
        return host  # getpeername's IPv4 text is canonical already (the common case, on every accept)
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LogThrottle:
    """One kind of event logged at most once per `interval` seconds, with how many there were since."""

    def __init__(self, level: int, what: str, interval: float = 10.0, logger: logging.Logger = log) -> None:
        self.level, self.what, self.interval, self.logger = level, what, interval, logger
        self.count = 0
        self._next = -float("inf")

    def hit(self, detail: str = "") -> None:
        self.count += 1
        now = trio.current_time()
        if now >= self._next:
            suffix = f" ({self.count} in the last {self.interval:g} s)" if self.count > 1 else ""
            self.logger.log(self.level, "%s%s%s", self.what, f": {detail}" if detail else "", suffix)
            self.count = 0
            self._next = now + self.interval


CLOSE_GRACE_S = 0.5  # past the handshake deadline, time to send the peer its 4006 close before dropping it


@dataclass(eq=False)
class Pending:
    """One connection in its handshake, due to be admitted by `deadline`; cancelling `scope` closes it (its
    own deadline allows CLOSE_GRACE_S more, to say why)."""

    source: str
    started: float = field(default_factory=trio.current_time)
    deadline: float = 0.0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: bool = False


class PendingTable:
    """The connections still in their handshake, by source, oldest first."""

    def __init__(self, limits: PeerLimits) -> None:
        self.limits = limits
        self.by_source: dict[str, deque[Pending]] = {}
        self.count = 0
        self._holding: dict[int, set[str]] = {}  # slots held -> the sources holding that many
        self._most = 0  # the most slots any source holds (checked on every accept under a flood)
        self.refused = LogThrottle(logging.WARNING, "refused peer connections: too many handshakes from one address")
        self.evicted = LogThrottle(logging.WARNING, "closed stalled peer handshakes to make room for new ones")
        self.full = LogThrottle(logging.WARNING, "refused peer connections: the table of handshakes is full")

    def add(self, source: str, cap: int) -> Pending | None:
        """A slot for a new connection from `source`, or None: that source has all it may have, or the
        table is full and no source holds more than it does. `cap` is the table's size now (the
        configured one, or less when descriptors are short)."""
        held = len(self.by_source.get(source, ()))
        if held >= self.limits.max_pending_per_source:
            self.refused.hit(source)
            return None
        while self.count >= cap:
            # Full: the source holding the most slots gives up its oldest (among equals, the one waiting
            # longest), but only to a newcomer or to a source holding at least two fewer, so that shares
            # even out rather than change hands forever. A flood from many addresses then settles and
            # its new connections are refused cheaply, while a peer arriving from an address of its own
            # gets a slot. Starving that peer takes about `max_pending` addresses (IPv6: /64s).
            most = self._most
            if not (most > held + 1 or (held == 0 and most > 0)):
                self.full.hit(source)
                return None
            heaviest = min(self._holding[most], key=lambda s: self.by_source[s][0].started)
            self._evict(self.by_source[heaviest][0], most)
        pending = Pending(source)
        pending.deadline = pending.started + self.limits.handshake_timeout
        pending.scope.deadline = pending.deadline + CLOSE_GRACE_S
        self.by_source.setdefault(source, deque()).append(pending)
        self._count_for(source, held, held + 1)
        return pending

    def _evict(self, victim: Pending, held: int) -> None:
        self.evicted.hit(f"the oldest from {victim.source}, which held {held}")
        self.remove(victim)
        victim.scope.cancel()

    def remove(self, pending: Pending) -> None:
        if pending.done:
            return
        pending.done = True
        mine = self.by_source[pending.source]
        mine.remove(pending)
        if not mine:
            del self.by_source[pending.source]
        self._count_for(pending.source, len(mine) + 1, len(mine))

    def _count_for(self, source: str, was: int, now: int) -> None:
        self.count += now - was
        if was:
            self._holding[was].discard(source)
        if now:
            self._holding.setdefault(now, set()).add(source)
        self._most = max(self._most, now)
        while self._most and not self._holding.get(self._most):
            self._most -= 1


class LinkTable:
    """Admitted links by peer identity, oldest first."""

    def __init__(self, limits: PeerLimits) -> None:
        self.limits = limits
        self.by_peer: dict[bytes, deque[PeerConnection]] = {}
        self.replaced = LogThrottle(logging.INFO, "closed a peer's oldest link for its newest")

    def add(self, conn: PeerConnection, nursery: trio.Nursery) -> None:
        """Count `conn` under its peer; over the cap, the peer's oldest link is closed (in `nursery`)."""
        mine = self.by_peer.setdefault(conn.peer_public_key, deque())
        mine.append(conn)
        while len(mine) > self.limits.max_links_per_peer:
            old = mine.popleft()
            self.replaced.hit(f"{conn.peer_peer_id} has {self.limits.max_links_per_peer}")
            reason = close_reason("replaced", "a newer link from the same peer took this one's place")
            nursery.start_soon(old.aclose, NORMAL_CLOSE, reason)

    def remove(self, conn: PeerConnection) -> None:
        mine = self.by_peer.get(conn.peer_public_key)
        if mine is not None and conn in mine:
            mine.remove(conn)
            if not mine:
                del self.by_peer[conn.peer_public_key]
