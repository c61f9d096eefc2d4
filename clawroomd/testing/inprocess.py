"""A whole daemon inside the caller's trio run: real store (SQLite in `folder`), real keys, real peer
listener on 127.0.0.1, the local API called directly (no socket). For tests of the daemon layer that do
not need a process of their own (kill -9, exit codes and signals do)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from clawroomd.core.identity import Identity
from clawroomd.daemon.config import DaemonConfig
from clawroomd.daemon.store import Store
from clawroomd.daemon.tuning import Tuning
from clawroomd.daemon.wiring import Daemon

FAST_LINKS = {"keepalive_interval": 0.5, "dead_after": 3.0, "max_backoff": 0.3, "send_timeout": 5.0}


def daemon_config(
    folder: Path, tuning: Mapping[str, float] | None = None, port: int = 0, **settings: Any
) -> DaemonConfig:
    """`settings`: other DaemonConfig fields (e.g. `deliver=("cmd",)`)."""
    return DaemonConfig(
        state_dir=folder,
        socket_path=folder / "unused.sock",
        listen_host="127.0.0.1",
        listen_port=port,
        tuning=Tuning.from_table(FAST_LINKS if tuning is None else tuning),
        **settings,
    )


@asynccontextmanager
async def open_daemon(
    folder: Path,
    *,
    tuning: Mapping[str, float] | None = None,
    identity: Identity | None = None,
    port: int = 0,
    **settings: Any,
) -> AsyncIterator[Daemon]:
    """A started daemon whose state lives in `folder` (created 0700); stopped and closed on exit.

    A daemon restarted on the same folder needs the same `identity` (its rooms are signed with it) and,
    for its guests to find it again, the same `port` (they dial the address in the join URL)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = Store(folder)
    try:
        async with trio.open_nursery() as nursery:
            daemon = Daemon(
                config=daemon_config(folder, tuning, port, **settings),
                store=store,
                identity=identity or Identity.from_seed(os.urandom(32)),
                static_key=os.urandom(32),
                nursery=nursery,
            )
            await nursery.start(daemon.start)
            yield daemon
            nursery.cancel_scope.cancel()
    finally:
        store.close()


async def call(daemon: Daemon, method: str, **params: Any) -> Any:
    """A local-API call as a client would make it, minus the socket (no session: not for room.watch)."""
    return await daemon.api.handle(method, params, None)  # type: ignore[arg-type]


def listen_port(daemon: Daemon) -> int:
    """The peer port the daemon bound (to restart it on the same one)."""
    return int(daemon.listen[0].rpartition(":")[2])


async def until(cond: Callable[[], object], timeout: float = 15) -> None:
    """Poll `cond` until it is true; trio.TooSlowError after `timeout` seconds."""
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def open_room(host: Daemon, guest: Daemon, **create: Any) -> str:
    """A room created on `host` and joined by `guest`, with the join seen by the host; its id."""
    created = await call(host, "room.create", **{"topic": "price", "fields": ["price"], **create})
    await call(guest, "room.join", join_url=created["join_url"], label="g")
    room_id: str = created["room_id"]
    await until(lambda: host.rooms[room_id].state.phase == "active")
    return room_id
