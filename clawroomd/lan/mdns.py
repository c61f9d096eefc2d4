"""Advertise this daemon and browse for others over multicast DNS, under trio.

python-zeroconf runs its own threads; every blocking call of it (start, register: ~1.6 s of probing,
resolve, unregister, close) goes through `trio.to_thread.run_sync`, and the browser's callbacks come
back into trio through the trio token. The unregister (the "goodbye" others see) runs shielded, so a
daemon shutting down still says it. A peer that dies without a goodbye is only noticed by its records
running out or by dialing it: the daemon ages sightings out (daemon/peers.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from .interfaces import Interface
from .txt import SERVICE_TYPE, BadAdvert, encode_txt, instance_name, parse_txt

log = logging.getLogger("clawroomd.lan")

RESOLVE_TIMEOUT_MS = 3000
MAX_RESOLVING = 4  # resolves in flight at once (each holds a worker thread)
QUEUE = 256  # browser events waiting for trio; beyond that they are dropped (a flood), the next one counts


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """A daemon seen on the LAN: what its advert claims and where it says it listens."""

    peer_id: str
    name: str
    addrs: tuple[tuple[str, int], ...]
    service: str  # the DNS-SD instance name (to match a later removal)


class Discovery:
    """Advertise `peer_id`/`name` at `advertised`:`port` on `interfaces`; report other daemons to
    `seen`/`gone`."""

    def __init__(
        self,
        *,
        peer_id: str,
        name: str,
        port: int,
        interfaces: list[Interface],
        advertised: list[str],
        seen: Callable[[Sighting], None],
        gone: Callable[[str], None],
    ) -> None:
        self.peer_id = peer_id
        self.name = name
        self.port = port
        self.interfaces = interfaces
        self.advertised = advertised  # the IPv4 addresses put in our A records (where we listen)
        self.seen = seen
        self.gone = gone  # called with the service name
        self.registered = trio.Event()
        self._resolving: set[str] = set()
        self._limiter = trio.CapacityLimiter(MAX_RESOLVING)

    async def run(self) -> None:
        """Until cancelled. Raises OSError if multicast cannot be set up on the interfaces."""
        from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

        addresses = [i.address for i in self.interfaces]
        zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=addresses, ip_version=IPVersion.V4Only))
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{instance_name(self.peer_id, self.name)}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(a) for a in self.advertised],
            port=self.port,
            properties=encode_txt(self.peer_id, self.name),
            server=f"clawroomd-{self.peer_id.replace('-', '')[:16].lower()}.local.",
        )
        registered = False
        browser: Any = None
        try:
            await trio.to_thread.run_sync(lambda: zc.register_service(info, allow_name_change=True))
            registered = True
            self.registered.set()
            log.info(
                "LAN discovery on %s: advertising %r at port %d",
                ", ".join(f"{i.name} {i.address}" for i in self.interfaces), self.name, self.port,
            )  # fmt: skip
            send, receive = trio.open_memory_channel[tuple[str, str]](QUEUE)
            token = trio.lowlevel.current_trio_token()

            def deliver(item: tuple[str, str]) -> None:  # runs in trio; must not raise
                with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                    send.send_nowait(item)

            def on_change(*, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(deliver, (name, state_change.name))

            browser = await trio.to_thread.run_sync(lambda: ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change]))
            async with trio.open_nursery() as nursery:
                async for name, change in receive:
                    if change == "Removed":
                        self.gone(name)
                    elif name not in self._resolving:
                        self._resolving.add(name)
                        nursery.start_soon(self._resolve, zc, name)
        finally:
            with trio.CancelScope(shield=True):
                if browser is not None:
                    await trio.to_thread.run_sync(browser.cancel)
                if registered:
                    await trio.to_thread.run_sync(zc.unregister_service, info)
                await trio.to_thread.run_sync(zc.close)

    async def _resolve(self, zc: Any, name: str) -> None:
        from zeroconf import IPVersion

        try:
            info = await trio.to_thread.run_sync(
                lambda: zc.get_service_info(SERVICE_TYPE, name, RESOLVE_TIMEOUT_MS), limiter=self._limiter
            )
        finally:
            self._resolving.discard(name)
        if info is None or not info.port:
            log.debug("LAN: %s did not resolve", name)
            return
        try:
            advert = parse_txt(dict(info.properties))
        except BadAdvert as exc:
            log.debug("LAN: ignoring %s: %s", name, exc)
            return
        if advert.peer_id == self.peer_id:
            return  # ourselves
        addrs = tuple((a, int(info.port)) for a in info.parsed_addresses(IPVersion.V4Only))
        self.seen(Sighting(peer_id=advert.peer_id, name=advert.name, addrs=addrs, service=name))
