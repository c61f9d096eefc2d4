"""The daemon's trio main task: local API, the wired daemon (`wiring.Daemon`), readiness notification, signals.

Order of start-up inside ``run_daemon``:

1. SIGTERM/SIGINT are watched (from the very start, so a stop request during start-up is honoured).
2. The `Daemon` (the composition root, `wiring.py`) is built with the daemon's nursery.
3. The local API socket is bound (``serve_rpc``). From here on clients can connect; a request that
   arrives before step 4 finishes is the daemon's to answer (e.g. ``not_ready``).
4. ``await nursery.start(daemon.start)``: the daemon binds the peer listener, resumes rooms and
   reports its listen addresses (list of ``"host:port"``).
5. ``READY=1`` and a ``STATUS=`` line go to ``$NOTIFY_SOCKET`` (systemd ``Type=notify``), and
   ``task_status.started(DaemonStarted(...))`` for in-process callers (tests).

On SIGTERM or SIGINT: ``STOPPING=1``, then the nursery is cancelled: every task ends, the socket file
is removed by serve_rpc (unless systemd passed it in: socket activation leaves it to systemd). The
caller (main) closes the store after run_daemon returns.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .rpc import serve_rpc

if TYPE_CHECKING:
    from clawroomd.core.identity import Identity

    from .config import DaemonConfig
    from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaemonStarted:
    socket_path: Path
    listen: list[str]


def sd_notify(message: str, notify_socket: str | None) -> bool:
    """Send `message` to the systemd notification socket (path or abstract ``@name``); False if none.

    Failures are logged, never raised: a daemon must not die because its supervisor went away.
    """
    if not notify_socket:
        return False
    if notify_socket.startswith("@"):
        address = "\0" + notify_socket[1:]
    elif notify_socket.startswith("/"):
        address = notify_socket
    else:
        log.warning("NOTIFY_SOCKET=%r is not a Unix socket path; not notifying", notify_socket)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError as e:
        log.warning("could not notify %s: %s", notify_socket, e)
        return False
    return True


async def _watch_signals(
    cancel_scope: trio.CancelScope,
    notify_socket: str | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            sd_notify("STOPPING=1", notify_socket)
            cancel_scope.cancel()
            return


async def run_daemon(
    config: DaemonConfig,
    store: Store,
    identity: Identity,
    static_key: bytes,
    *,
    env: Mapping[str, str] | None = None,
    inherited_socket: socket.socket | None = None,
    task_status: trio.TaskStatus[DaemonStarted] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until SIGTERM/SIGINT (or cancellation); see the module docstring.

    NOTIFY_SOCKET is read from `env` (default os.environ) and removed from os.environ so that commands
    the daemon runs later do not inherit it. Must run in the main thread (signal handling).
    `inherited_socket`: the local API's listening socket from systemd (activation.py), served instead
    of binding config.socket_path.
    """
    from .wiring import Daemon

    notify_socket = os.environ.pop("NOTIFY_SOCKET", None) if env is None else env.get("NOTIFY_SOCKET")
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_signals, nursery.cancel_scope, notify_socket)
        daemon = Daemon(config=config, store=store, identity=identity, static_key=static_key, nursery=nursery)
        socket_path = await nursery.start(
            functools.partial(serve_rpc, config.socket_path, daemon, max_request=config.max_request,
                              notify_budget=config.tuning.watch_memory, inherited=inherited_socket)
        )
        listen = list(await nursery.start(daemon.start))
        log.info(
            "clawroomd ready: peer id %s, local API %s, peers on %s",
            identity.peer_id, socket_path, ", ".join(listen) or "(none)",
        )  # fmt: skip
        sd_notify(f"READY=1\nSTATUS=peer id {identity.peer_id}; listening on {', '.join(listen) or '-'}", notify_socket)
        task_status.started(DaemonStarted(socket_path=socket_path, listen=listen))
