"""Two network namespaces joined by one link, made and removed by a test (root only): for partitions,
packet loss and delay between real daemons, without touching the machine's own interfaces.

    with netns_pair() as net:                       # a veth pair: net.cut() / net.restore() set it down/up
        host = DaemonProcess(..., netns=net.a.name, listen_host=net.a.addr)
    with netns_pair(loss=0.1, delay=0.05, jitter=0.02, seed=1) as net:   # an impaired link

An impaired link uses `tc qdisc ... netem` on the veth ends where the kernel has netem. Where it has not
(this project's CI kernel is built without CONFIG_NET_SCH_NETEM), each namespace gets a TUN device
instead and a forwarder thread in the test process carries every IP packet from one to the other,
dropping each with probability `loss` and holding the rest for `delay` +- `jitter` seconds (uniform, so
packets reorder as under netem). `net.impairment` says which one is in use. Both are real packets
through each namespace's own TCP stack: retransmits, RTOs and reordering happen in the kernel.

Everything made is removed on exit, also when the body fails; names carry the pid so that concurrent
runs do not collide. `unavailable()` gives the reason to skip where namespaces cannot be made.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import random
import select
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def unavailable() -> str | None:
    """Why two namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    name = f"crprobe{os.getpid()}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def netem_available() -> bool:
    """Whether the kernel has the netem queueing discipline (probed on a veth in a scratch namespace)."""
    if shutil.which("tc") is None:
        return False
    name = f"crnetem{os.getpid()}"
    if _ip("netns", "add", name, check=False).returncode != 0:
        return False
    try:
        _ip("-n", name, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
        probe = subprocess.run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "x0", "root", "netem",
                                "delay", "1ms"], capture_output=True, timeout=20)  # fmt: skip
        return probe.returncode == 0
    finally:
        _ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class Namespace:
    name: str
    addr: str  # its address on the link
    dev: str  # its end of the link

    def argv(self, *command: str) -> list[str]:
        """`command` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *command]


class _Forwarder:
    """Carries IP packets between two TUN devices, with loss and delay (the userspace netem)."""

    def __init__(self, fds: tuple[int, int], loss: float, delay: float, jitter: float, seed: int) -> None:
        self.fds = fds
        self.loss, self.delay, self.jitter = loss, delay, jitter
        self.cut = False  # drop everything (a partition)
        self.rng = random.Random(seed)
        self.queue: list[tuple[float, int, int, bytes]] = []
        self.ready = threading.Condition()
        self.stopping = False
        self.count = 0
        self.dropped = 0
        self.threads = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._write, daemon=True)]  # fmt: skip

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify()
        for t in self.threads:
            t.join(5)

    def _read(self) -> None:
        a, b = self.fds
        while not self.stopping:
            readable, _, _ = select.select([a, b], [], [], 0.1)
            for fd in readable:
                try:
                    packet = os.read(fd, 65536)
                except OSError:
                    return
                with self.ready:
                    if self.cut or self.rng.random() < self.loss:
                        self.dropped += 1
                        continue
                    held = self.rng.uniform(self.delay - self.jitter, self.delay + self.jitter)
                    due = time.monotonic() + max(0.0, held)
                    self.count += 1
                    heapq.heappush(self.queue, (due, self.count, b if fd == a else a, packet))
                    self.ready.notify()

    def _write(self) -> None:
        while True:
            with self.ready:
                while not self.stopping and (not self.queue or self.queue[0][0] > time.monotonic()):
                    self.ready.wait(None if not self.queue else self.queue[0][0] - time.monotonic())
                if self.stopping:
                    return
                _, _, fd, packet = heapq.heappop(self.queue)
            with contextlib.suppress(OSError):  # a device that is down drops it, as a wire would
                os.write(fd, packet)


class NetPair:
    """Namespaces `a` and `b` and the link between them (see the module docstring)."""

    def __init__(self, loss: float, delay: float, jitter: float, seed: int) -> None:
        tag = f"{os.getpid() % 100000}{random.randrange(1000):03d}"
        subnet = random.randrange(1, 250)
        self.a = Namespace(f"cra{tag}", f"10.213.{subnet}.1", f"cra{tag}")
        self.b = Namespace(f"crb{tag}", f"10.213.{subnet}.2", f"crb{tag}")
        self.impaired = loss > 0 or delay > 0
        self.params = (loss, delay, jitter, seed)
        self.impairment = "none"
        self._forwarder: _Forwarder | None = None
        self._tun_fds: list[int] = []

    def _make(self) -> None:
        for ns in (self.a, self.b):
            _ip("netns", "add", ns.name)
        loss, delay, jitter, seed = self.params
        what = f"loss {loss:.0%}, delay {delay * 1000:g} ms +- {jitter * 1000:g} ms"
        if self.impaired and not netem_available():
            self._make_tun_link()
            self._forwarder = _Forwarder((self._tun_fds[0], self._tun_fds[1]), loss, delay, jitter, seed)
            self._forwarder.start()
            self.impairment = f"userspace forwarder (this kernel has no netem): {what}"
        else:
            a, b = self.a, self.b
            _ip("link", "add", a.dev, "netns", a.name, "type", "veth", "peer", "name", b.dev, "netns", b.name)
            if self.impaired:
                netem = ["netem", "loss", f"{loss * 100:g}%", "delay", f"{delay * 1000:g}ms", f"{jitter * 1000:g}ms"]
                for ns in (a, b):
                    subprocess.run(ns.argv("tc", "qdisc", "add", "dev", ns.dev, "root", *netem), check=True, timeout=20)
                self.impairment = f"tc netem: {what}"
        for ns in (self.a, self.b):
            _ip("-n", ns.name, "addr", "add", f"{ns.addr}/24", "dev", ns.dev)
            _ip("-n", ns.name, "link", "set", ns.dev, "up")
            _ip("-n", ns.name, "link", "set", "lo", "up")

    def _make_tun_link(self) -> None:
        for ns in (self.a, self.b):
            fd = os.open("/dev/net/tun", os.O_RDWR)
            self._tun_fds.append(fd)
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", ns.dev.encode(), _IFF_TUN | _IFF_NO_PI))
            _ip("link", "set", ns.dev, "netns", ns.name)  # the device moves; this process keeps its queue

    def cut(self) -> None:
        """Partition: no packet passes either way until `restore` (connections are not reset)."""
        if self._forwarder is not None:
            self._forwarder.cut = True
        else:
            for ns in (self.a, self.b):
                _ip("-n", ns.name, "link", "set", ns.dev, "down")

    def restore(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cut = False
        else:
            for ns in (self.a, self.b):
                _ip("-n", ns.name, "link", "set", ns.dev, "up")

    def remove(self) -> None:
        """Remove all of it (idempotent); the namespaces' processes should be stopped first."""
        if self._forwarder is not None:
            self._forwarder.stop()
            self._forwarder = None
        for ns in (self.a, self.b):
            _ip("netns", "del", ns.name, check=False)  # takes its end of the link with it
        for fd in self._tun_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._tun_fds.clear()


@contextlib.contextmanager
def netns_pair(*, loss: float = 0.0, delay: float = 0.0, jitter: float = 0.0, seed: int = 0) -> Iterator[NetPair]:
    """Two namespaces joined by a link (impaired when `loss` or `delay` is given); removed on exit."""
    pair = NetPair(loss, delay, jitter, seed)
    try:
        pair._make()
        yield pair
    finally:
        pair.remove()
