"""Hostile peers and local clients against a real daemon, and what an honest room on it sees meanwhile.

Used by tests/test_hostile_*.py (short runs, generous bounds) and bench/hostile.py (longer runs, the
figures). The daemons are real processes (`DaemonProcess`); the attackers run in the caller's trio run.
Each attack is an async function that runs until cancelled and counts what it did in an `AttackStats`.

The honest room: the host creates it, the guest joins it, and an agent on each side watches it. One
sample is a `room.send` by one side until the other side's watch notification for that event arrives
(send -> peer sees), alternating sides, exactly as bench/relay.py measures the relay.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..client import AsyncClient, ClientError
from ..core import cbor
from ..core.identity import Identity
from ..core.joinurl import JoinURL
from ..link import DialFailed, LinkClosed, PeerConnection, dial_peer
from ..link.connection import close_ws
from .daemons import DaemonProcess

# Fast keepalive so that a peer stalled after its handshake is cut in seconds, not the default 30.
HOSTILE_TUNING: dict[str, Any] = {
    "keepalive_interval": 0.5,
    "dead_after": 3.0,
    "max_backoff": 0.3,
    "send_timeout": 5.0,
    "handshake_timeout": 3.0,
}
FLOOD_SOURCES = [f"127.0.0.{i}" for i in range(2, 22)]  # the honest guest dials from 127.0.0.1
TEXT = "offer: 30 s retry, 5 attempts, exponential backoff " * 2


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


@dataclass
class Latency:
    samples: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99_ms(self) -> float:
        return pct(self.samples, 0.99) * 1000

    def __str__(self) -> str:
        return f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms ({len(self.samples)} round trips)"


class MemorySampler:
    """The daemon's RSS every `interval` s while it runs; `peak_kb` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kb = memory_kb(pid)[0]

    async def run(self) -> None:
        while True:
            with suppress(OSError, KeyError):
                self.peak_kb = max(self.peak_kb, memory_kb(self.pid)[0])
            await trio.sleep(self.interval)


class HonestRoom:
    """One room between `host` and `guest` with an agent watching on each side; `probe` measures it."""

    def __init__(self, host: DaemonProcess, guest: DaemonProcess) -> None:
        self.host, self.guest = host, guest
        self.room_id = ""
        self.seq = -1
        self.turns_left = 0
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> HonestRoom:
        clients = [await self._stack.enter_async_context(AsyncClient(d.socket)) for d in (self.host, self.guest) * 2]
        self.h, self.g, self.wh, self.wg = clients
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        created = await self.h.call(
            "room.create", topic="honest", fields=["price"], max_turns=1000, turn_timeout_s=3600
        )
        await self.g.call("room.join", join_url=created["join_url"], label="honest", timeout_s=30)
        self.room_id = created["room_id"]
        with trio.fail_after(30):
            while (st := await self.h.call("room.status", room_id=self.room_id))["lifecycle"] != "active":
                await trio.sleep(0.02)
        self.seq = st["seq"]
        self.turns_left = 1000 - st["turns"]
        for w in (self.wh, self.wg):
            await w.call("room.watch", room_id=self.room_id, after=self.seq)

    async def _seen(self, watcher: AsyncClient, seq: int) -> None:
        async for note in watcher.notifications():
            params = note.get("params", {})
            if (
                note["method"] == "room.event"
                and params.get("room_id") == self.room_id
                and params.get("event", {}).get("seq") == seq
            ):
                return
        raise ClientError("the watch ended")

    async def probe(self, n: int, *, timeout: float = 60.0) -> Latency:
        """`n` messages, alternating host and guest; each timed from `room.send` to the peer's watch."""
        samples = []
        with trio.fail_after(timeout):
            for _ in range(n):
                if self.turns_left < 2:
                    await self._open()
                sender, watcher = (self.h, self.wg) if self.seq % 2 == 0 else (self.g, self.wh)
                status = await sender.call("room.status", room_id=self.room_id)
                if not status["your_turn"]:  # the turn is the other side's: let it move untimed
                    sender, watcher = (self.g, self.wh) if sender is self.h else (self.h, self.wg)
                t0 = time.perf_counter()
                await sender.call("room.send", room_id=self.room_id, text=TEXT)
                self.seq += 1
                await self._seen(watcher, self.seq)
                samples.append(time.perf_counter() - t0)
                self.turns_left -= 1
        return Latency(samples)


# ------------------------------------------------------------------------------------------------ attacks
@dataclass
class AttackStats:
    """What an attack managed: counts by what happened (e.g. {"links": 40, "closed 4008": 40})."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


Attack = Callable[["Target", AttackStats], Awaitable[None]]


@dataclass
class Target:
    """The host daemon under attack, and a rogue guest bound to one of its rooms by a real invite."""

    host: DaemonProcess
    identity: Identity = field(default_factory=lambda: Identity.from_seed(os.urandom(32)))
    static: bytes = field(default_factory=lambda: os.urandom(32))
    url: JoinURL | None = None
    refused_submission: bytes = b""  # a correctly signed event the host refuses (not the guest's turn)

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.host.port)

    async def bind(self) -> JoinURL:
        """Have the host create a room and redeem its invite with our key (the owner invited us)."""
        if self.url is None:
            async with AsyncClient(self.host.socket) as c:
                created = await c.call("room.create", topic="rogue", fields=["price"], max_turns=1000, first="host")
            self.url = JoinURL.parse(created["join_url"])
            async with self.dial(invite=True):
                pass
            self.refused_submission = (await _signed_join(self)).envelope
        return self.url

    def dial(self, *, invite: bool = False) -> Any:
        assert self.url is not None
        return dial_peer(
            self.addr,
            identity=self.identity,
            static_private=self.static,
            expected_peer_id=self.url.host_peer_id,
            invite=self.url.invite if invite else None,
            dead_after=3600.0,  # the attacker's own watchdog must not end its attack
        )


async def _until_closed(conn: PeerConnection, stats: AttackStats, timeout: float = 10.0) -> None:
    """Read until the host closes the link; count how it closed it."""
    with trio.move_on_after(timeout):
        try:
            while True:
                await conn.receive()
        except LinkClosed as exc:
            stats.add(f"closed {exc.close_code}")
            return
    stats.add("still open")


async def junk_after_handshake(target: Target, stats: AttackStats) -> None:
    """Admitted links that then send junk: raw bytes (not a Noise message), then well-encrypted CBOR of no
    known frame shape, then a map frame of an unknown kind. Each should be cut at once."""
    await target.bind()
    junk: list[Callable[[PeerConnection], Awaitable[None]]] = [
        lambda c: c._ws.send_message(os.urandom(200)),
        lambda c: c._ws.send_message(c._transport.encrypt(cbor.encode(["no", "such", "frame"]))),
        lambda c: c.send({"t": "rm -rf", "room": target.url.room_id if target.url else ""}),
        lambda c: c._ws.send_message("text, not binary"),
    ]
    i = 0
    while True:
        try:
            async with target.dial() as conn:
                stats.add("links")
                await junk[i % len(junk)](conn)
                await _until_closed(conn, stats)
        except (DialFailed, LinkClosed, OSError) as exc:
            stats.add(f"dial failed: {type(exc).__name__}")
            await trio.sleep(0.05)
        i += 1


async def frame_flood(target: Target, stats: AttackStats) -> None:
    """Admitted links sending well-formed frames as fast as they can: syncs of the rogue room (the host
    re-sends its whole log each time), syncs and submits for rooms that do not exist, and submits of a
    signed event the host refuses. One link reads (and discards) what the host answers; the other reads
    nothing, so the host can only push back on it."""
    url = await target.bind()
    frames = [
        {"t": "sync", "room": url.room_id, "after": -1},
        {"t": "sync", "room": "cr_" + "0" * 20, "after": -1},
        {"t": "submit", "room": url.room_id, "sid": "x" * 64, "env": target.refused_submission},
        {"t": "submit", "room": "cr_" + "1" * 20, "sid": "y", "env": b"z" * 1000},
    ]

    async def drain(conn: PeerConnection) -> None:
        with suppress(LinkClosed):
            while True:
                await conn.receive()
                stats.add("answers read")

    async def one(reads: bool) -> None:
        while True:
            try:
                async with target.dial() as conn, trio.open_nursery() as nursery:
                    stats.add("links")
                    if reads:
                        nursery.start_soon(drain, conn)
                    i = 0
                    try:
                        while True:
                            await conn.send(frames[i % len(frames)])
                            stats.add("frames")
                            i += 1
                    except LinkClosed as exc:
                        stats.add(f"link closed {exc.close_code} {exc.reason}".strip())
                        nursery.cancel_scope.cancel()
            except (DialFailed, LinkClosed, OSError) as exc:
                stats.add(f"dial failed: {type(exc).__name__}")
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, True)
        nursery.start_soon(one, False)


async def _signed_join(target: Target) -> Any:
    """Join the rogue room properly (a signed `joined`), then sign a message the host must refuse without
    closing the link: it is the host's turn. Read the host's head over the link (no GuestRoom needed)."""
    from ..core.envelope import open_envelope, seal
    from ..core.events import Body, Header, Joined, Message

    assert target.url is not None
    room = target.url.room_id

    def sign(after: Any, body: Body, sid: str) -> Any:
        header = Header(room=room, seq=after.header.seq + 1, prev=after.hash, author="guest",
                        key=target.identity.public_key, ts=after.header.ts, sid=sid)  # fmt: skip
        return seal(target.identity, header, body)

    async with target.dial() as conn:
        await conn.send({"t": "sync", "room": room, "after": -1})
        while (frame := await conn.receive()).get("t") != "event":
            pass
        joined = sign(open_envelope(frame["env"], verify=False), Joined(label="rogue"), "rogue-join")
        await conn.send({"t": "submit", "room": room, "sid": "rogue-join", "env": joined.envelope})
        while (frame := await conn.receive()).get("t") != "event" or frame["env"] != joined.envelope:
            pass
    return sign(joined, Message(text="out of turn"), "rogue-msg")


async def stall_mid_frame(target: Target, stats: AttackStats) -> None:
    """Connections that stop halfway through a WebSocket frame: before the handshake (half of Noise
    message 1) and after admission (a frame header announcing 60 KB, then 10 bytes). The first kind
    must go at the handshake timeout, the second within `dead_after`."""
    await target.bind()
    async with trio.open_nursery() as nursery:

        async def before_handshake(source: str) -> None:
            while True:
                s = trio.socket.socket()
                try:
                    await s.bind((source, 0))
                    await s.connect(target.addr)
                    await s.send(upgrade_request(target.addr[1]))
                    # Noise message 1 is 32 bytes: a masked frame announcing them, then only 10
                    await s.send(bytes([0x82, 0xA0]) + os.urandom(4) + os.urandom(10))
                    stats.add("half frames before handshake")
                    t0 = trio.current_time()
                    with suppress(OSError):
                        while await s.recv(4096):
                            pass
                    stats.add(f"cut after {round(trio.current_time() - t0)} s")
                except OSError:
                    await trio.sleep(0.05)
                finally:
                    s.close()

        async def after_admission() -> None:
            while True:
                try:
                    async with target.dial() as conn:
                        stats.add("half frames after admission")
                        stream = conn._ws._stream
                        # FIN + binary, masked (client frames are), 16-bit length 60000, mask key, 10 bytes
                        await stream.send_all(bytes([0x82, 0xFE, 0xEA, 0x60]) + os.urandom(4) + b"0123456789")
                        conn._last_sent = float("inf")  # and no heartbeats from us: a true stall
                        t0 = trio.current_time()
                        await _until_closed(conn, stats, timeout=30)
                        stats.add(f"stalled link cut after {round(trio.current_time() - t0)} s")
                except (DialFailed, LinkClosed, OSError) as exc:
                    stats.add(f"link ended: {type(exc).__name__}")
                    await trio.sleep(0.05)

        for source in FLOOD_SOURCES[:8]:
            nursery.start_soon(before_handshake, source)
        for _ in range(4):
            nursery.start_soon(after_admission)


async def replay_frames(target: Target, stats: AttackStats) -> None:
    """Replays, in turn: a Noise transport message sent twice on its link (its nonce reused), a message
    recorded on an earlier link, a whole recorded handshake on a new connection, and the host's own signed
    events submitted back to it as the guest's."""
    url = await target.bind()
    recorded: list[bytes] = []
    handshake: list[bytes] = []
    i = 0
    while True:
        try:
            if i % 4 == 2 and handshake:
                await _replay_handshake(target, handshake, stats)
                i += 1
                continue
            async with target.dial() as conn:
                stats.add("links")
                wire = conn._transport.encrypt(cbor.encode([0, {"t": "sync", "room": "cr_" + "2" * 20, "after": -1}]))
                await conn._ws.send_message(wire)
                if i % 4 == 0:
                    await conn._ws.send_message(wire)  # the same message twice on this link
                elif i % 4 == 1 and recorded:
                    await conn._ws.send_message(recorded[-1])  # a message from an earlier link
                else:
                    await conn.send({"t": "sync", "room": url.room_id, "after": -1})
                    while (frame := await conn.receive()).get("t") != "event":
                        pass
                    await conn.send({"t": "submit", "room": url.room_id, "sid": "replay", "env": frame["env"]})
                recorded.append(wire)
                await _until_closed(conn, stats)
            if not handshake:
                handshake = await _record_handshake(target)
        except (DialFailed, LinkClosed, OSError) as exc:
            stats.add(f"link ended: {type(exc).__name__}")
            await trio.sleep(0.05)
        i += 1


async def _record_handshake(target: Target) -> list[bytes]:
    """Run a proper XX handshake as the rogue guest by hand, keeping its two messages (1 and 3)."""
    from trio_websocket import connect_websocket

    from ..core.channel import SecureChannel
    from ..link.listener import RESOURCE

    assert target.url is not None
    sent = []
    async with trio.open_nursery() as nursery:
        ws = await connect_websocket(nursery, *target.addr, RESOURCE, use_ssl=False)
        try:
            channel = SecureChannel(
                initiator=True,
                identity=target.identity,
                static_private=target.static,
                ephemeral_private=os.urandom(32),
                expected_peer_id=target.url.host_peer_id,
            )
            while not channel.complete:
                if channel.our_turn():
                    sent.append(channel.write_message())
                    await ws.send_message(sent[-1])
                else:
                    message = await ws.get_message()
                    assert isinstance(message, bytes)
                    channel.read_message(message)
        finally:
            with trio.CancelScope(shield=True):
                await close_ws(ws, 1000, "", timeout=0.5)  # closes the TCP socket too
        nursery.cancel_scope.cancel()
    return sent


async def _replay_handshake(target: Target, recorded: list[bytes], stats: AttackStats) -> None:
    from trio_websocket import ConnectionClosed, connect_websocket

    from ..link.listener import RESOURCE

    async with trio.open_nursery() as nursery:
        ws = await connect_websocket(nursery, *target.addr, RESOURCE, use_ssl=False)
        stats.add("replayed handshakes")
        try:
            await ws.send_message(recorded[0])
            await ws.get_message()  # the host's message 2, under a fresh ephemeral key
            await ws.send_message(recorded[1])  # message 3 of another session: cannot decrypt
            with trio.fail_after(10):
                await ws.get_message()
            stats.add("replayed handshake admitted")
        except ConnectionClosed as exc:
            stats.add(f"closed {exc.reason.code if exc.reason else 1006}")
        finally:
            with trio.CancelScope(shield=True):
                await close_ws(ws, 1000, "", timeout=0.5)  # closes the TCP socket too
        nursery.cancel_scope.cancel()


async def handshake_hoard(target: Target, stats: AttackStats, *, size: int = 300) -> None:
    """`size` connections from 20 addresses that never finish their handshake (idle TCP, an upgrade and
    then silence, or Noise message 1 and then silence), each reopened as soon as the host closes it."""

    async def slot(i: int) -> None:
        source = FLOOD_SOURCES[i % len(FLOOD_SOURCES)]
        while True:
            s = trio.socket.socket()
            try:
                await s.bind((source, 0))
                await s.connect(target.addr)
                stats.add("opened")
                if i % 3:
                    await s.send(upgrade_request(target.addr[1]))
                if i % 3 == 2:
                    # after the 101 response: one masked binary frame carrying a 32-byte "ephemeral key"
                    await s.send(bytes([0x82, 0xA0]) + bytes(4) + os.urandom(32))
                with suppress(OSError):
                    while await s.recv(4096):
                        pass
            except OSError:
                stats.add("refused")
                await trio.sleep(0.05)
            finally:
                s.close()

    async with trio.open_nursery() as nursery:
        for i in range(size):
            nursery.start_soon(slot, i)


def upgrade_request(port: int) -> bytes:
    return (
        f"GET /clawroom/1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


# ------------------------------------------------------------------------------------------ local clients
def _unix(path: Path) -> trio.socket.SocketType:
    s = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing and buffer little
    return s


async def client_flood(target: Target, stats: AttackStats, *, connections: int = 8) -> None:
    """Local clients that send requests as fast as the daemon takes them and never read a reply:
    cheap ones (daemon.info, bad JSON) and dear ones (the transcript of a room with some history)."""
    url = await target.bind()
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "room.transcript", "params": {"room_id": url.room_id}}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "daemon.info"}),
        '{"jsonrpc": "2.0", "id": 3, "method": ',
        json.dumps({"jsonrpc": "2.0", "id": 4, "method": "room.status", "params": {"room_id": url.room_id}}),
    ]
    batch = ("\n".join(lines) + "\n").encode() * 50

    async def one() -> None:
        while True:
            s = _unix(target.host.socket)
            try:
                await s.connect(str(target.host.socket))
                stats.add("connections")
                while True:
                    await s.send(batch)
                    stats.add("requests", 4 * 50)
            except OSError as exc:
                stats.add(f"ended: {exc.strerror}")
                await trio.sleep(0.1)
            finally:
                s.close()

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one)


async def huge_lines(
    target: Target, stats: AttackStats, *, connections: int = 8, kinds: tuple[int, ...] = (0, 1, 2)
) -> None:
    """Local clients sending lines the daemon must refuse: over the 1 MiB limit (no newline in sight),
    JSON nested far beyond any recursion limit, and nesting just deep enough to parse."""
    deep = b"[" * 200_000 + b"\n"
    nested_params = ('{"jsonrpc":"2.0","id":1,"method":"room.create","params":{"topic":' + "[" * 500 + "]" * 500
                     + ',"fields":["x"]}}\n').encode()  # fmt: skip
    big = b'{"jsonrpc":"2.0","id":1,"method":"daemon.info","pad":"' + b"x" * (2 << 20)

    async def one(i: int) -> None:
        kind = kinds[i % len(kinds)]
        payload = (big, deep, nested_params)[kind]
        while True:
            s = _unix(target.host.socket)
            try:
                await s.connect(str(target.host.socket))
                stats.add("connections")
                while True:
                    await s.send(payload)
                    stats.add(("huge", "deep", "nested")[kind] + " lines")
            except OSError:
                stats.add("cut")
                await trio.sleep(0.02)
            finally:
                s.close()

    async with trio.open_nursery() as nursery:
        for i in range(connections):
            nursery.start_soon(one, i)


async def silent_watchers(target: Target, stats: AttackStats, *, connections: int = 50) -> None:
    """Clients that subscribe to every room on the daemon (the honest one included, so each of its events
    goes out to all of them), with its whole history, and never read a byte."""
    await target.bind()
    async with AsyncClient(target.host.socket) as c:
        rooms = [r["room_id"] for r in (await c.call("room.list"))["rooms"]]
    socks = []
    try:
        for i in range(connections):
            s = _unix(target.host.socket)
            socks.append(s)
            await s.connect(str(target.host.socket))
            for room_id in rooms:
                req = {"jsonrpc": "2.0", "id": i, "method": "room.watch", "params": {"room_id": room_id}}
                await s.send(json.dumps(req).encode() + b"\n")
                stats.add("watches")
        await trio.sleep_forever()
    finally:
        for s in socks:
            s.close()


ATTACKS: dict[str, Attack] = {
    "junk after handshake": junk_after_handshake,
    "frame flood": frame_flood,
    "stall mid-frame": stall_mid_frame,
    "replayed frames": replay_frames,
    "300 unfinished handshakes": handshake_hoard,
    "client request flood": client_flood,
    "huge and nested lines": huge_lines,
    "silent watchers": silent_watchers,
}


@dataclass
class Figures:
    name: str
    latency: Latency
    rss_before_kb: int
    rss_peak_kb: int
    fds_after: int
    stats: AttackStats

    def line(self, baseline: Latency | None = None) -> str:
        ratio = ""
        if baseline is not None:
            ratio = f" (x{self.latency.p50_ms / baseline.p50_ms:.1f} / x{self.latency.p99_ms / baseline.p99_ms:.1f})"
        return (
            f"{self.name:<26} {self.latency.p50_ms:8.1f} {self.latency.p99_ms:8.1f}{ratio:<16} "
            f"RSS {self.rss_before_kb // 1024:4d} -> peak {self.rss_peak_kb // 1024:4d} MB, "
            f"{self.fds_after} fds; {self.stats}"
        )


async def under_attack(
    name: str, attack: Attack | None, target: Target, honest: HonestRoom, *, n: int, ramp: float = 1.0
) -> Figures:
    """Run `attack` (None: the baseline), let it ramp up for `ramp` s, probe the honest room `n` times
    while it goes on, and sample the host's RSS throughout."""
    assert target.host.proc is not None
    pid = target.host.proc.pid
    await target.bind()
    before = memory_kb(pid)[0]
    sampler = MemorySampler(pid)
    stats = AttackStats()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampler.run)
        if attack is not None:
            nursery.start_soon(attack, target, stats)
        await trio.sleep(ramp)
        latency = await honest.probe(n)
        nursery.cancel_scope.cancel()
    return Figures(name, latency, before, sampler.peak_kb, open_fds(pid), stats)
