"""Two network namespaces joined by a veth pair, made (and removed) by the tests, so that LAN discovery
multicasts only on a link the test owns, never on the machine's own interfaces."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

IFACE = "lan0"  # the veth end's name inside each namespace


def _ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(("netns", "exec", ns, "ip") if ns else ()), *args]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=20)


def why_not() -> str | None:
    """None if namespaces can be made here, else why not (the tests skip with it)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    probe = f"crprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace here: {getattr(exc, 'stderr', '') or exc}"
    _ip("netns", "del", probe)
    return None


@contextmanager
def veth_pair(tag: str) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """((ns_a, addr_a), (ns_b, addr_b)): two namespaces, each with lo and `lan0` up, on 10.231.N.0/24."""
    n = os.getpid() % 200 + 20
    ns_a, ns_b = f"cr{tag}a{os.getpid()}", f"cr{tag}b{os.getpid()}"
    end_a, end_b = f"cv{tag}a{n}"[:15], f"cv{tag}b{n}"[:15]
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", end_a, "type", "veth", "peer", "name", end_b)
        try:
            for end, ns, addr in ((end_a, ns_a, f"10.231.{n}.1"), (end_b, ns_b, f"10.231.{n}.2")):
                _ip("link", "set", end, "netns", ns)
                _ip("link", "set", end, "name", IFACE, ns=ns)
                _ip("addr", "add", f"{addr}/24", "dev", IFACE, ns=ns)
                _ip("link", "set", IFACE, "up", ns=ns)
                _ip("link", "set", "lo", "up", ns=ns)
        except BaseException:
            subprocess.run(["ip", "link", "del", end_a], capture_output=True)  # if not moved yet
            raise
        yield (ns_a, f"10.231.{n}.1"), (ns_b, f"10.231.{n}.2")
    finally:
        for ns in made:  # deleting a namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
