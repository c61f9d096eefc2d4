"""Which network interfaces discovery uses: pinned by name, or every non-loopback interface that has a
private IPv4 address (RFC 1918, link-local). Multicast goes only where the owner let it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class NoInterface(OSError):
    """No usable interface; the message says which were looked at. (An OSError: the daemon cannot start.)"""


@dataclass(frozen=True)
class Interface:
    name: str
    address: str  # IPv4, as text


def _ipv4_of_all() -> list[Interface]:
    import ifaddr  # a dependency of zeroconf

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                out.append(Interface(str(adapter.name), ip.ip))
    return out


def is_private_lan(address: str) -> bool:
    ip = ipaddress.IPv4Address(address)
    return ip.is_private and not ip.is_loopback and not ip.is_unspecified and not ip.is_multicast


def choose(pinned: tuple[str, ...] = (), found: list[Interface] | None = None) -> list[Interface]:
    """The interfaces (with their IPv4 addresses) to advertise and browse on."""
    found = _ipv4_of_all() if found is None else found
    if pinned:
        chosen = [i for i in found if i.name in pinned]
        missing = sorted(set(pinned) - {i.name for i in chosen})
        if missing:
            have = ", ".join(sorted({i.name for i in found})) or "none"
            raise NoInterface(f"no IPv4 address on interface(s) {', '.join(missing)} (interfaces with one: {have})")
        return chosen
    chosen = [i for i in found if is_private_lan(i.address)]
    if not chosen:
        raise NoInterface("no interface with a private IPv4 address (pin one with --lan-interface)")
    return chosen
