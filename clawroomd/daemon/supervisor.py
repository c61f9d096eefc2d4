"""PLACEHOLDER room supervisor (owned by the lead; replaced by the real one).

Contract used by clawroomd.daemon.service:

* ``Supervisor(*, config, store, identity, static_key, nursery)`` -- the nursery is the daemon's.
* ``await nursery.start(supervisor.start)`` -- binds the peer listener, resumes rooms, and calls
  ``task_status.started(listen)`` with the list of bound peer addresses as ``"host:port"`` strings.
  Tasks it needs beyond start() go into the nursery it was given (cancelled on shutdown).
* ``await supervisor.handle(method, params, session)`` -- the local-API dispatcher (see rpc.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

import clawroomd

from .errors import ApiError

if TYPE_CHECKING:
    from clawroomd.core.identity import Identity

    from .config import DaemonConfig
    from .rpc import Session
    from .store import Store


class Supervisor:
    def __init__(
        self,
        *,
        config: DaemonConfig,
        store: Store,
        identity: Identity,
        static_key: bytes,
        nursery: trio.Nursery,
    ) -> None:
        self.config = config
        self.store = store
        self.identity = identity
        self.static_key = static_key
        self.nursery = nursery
        self.listen: list[str] = []

    async def start(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self.listen)

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        if method == "daemon.info":
            return {
                "peer_id": self.identity.peer_id,
                "version": clawroomd.__version__,
                "listen": list(self.listen),
                "state_dir": str(self.config.state_dir),
                "socket": str(self.config.socket_path),
            }
        raise ApiError("method_not_found", f"unknown method {method!r}; try daemon.info")
