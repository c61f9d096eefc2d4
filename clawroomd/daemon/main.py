"""``clawroomd``: the daemon's entry point (also ``python -m clawroomd.daemon``).

Runs in the foreground (systemd style): logs to stderr, sends ``READY=1`` to ``$NOTIFY_SOCKET`` once
the local API and the peer listener are bound, stops cleanly on SIGTERM or SIGINT. Under socket
activation (``LISTEN_PID``/``LISTEN_FDS``, systemd/clawroomd.socket) it serves the local API on the
inherited listening socket instead of binding --socket (activation.py).

Exit codes:

====  ===============================================================================================
0     stopped cleanly (SIGTERM/SIGINT), or --help/--version
1     internal error (the traceback is in the log)
2     bad command line or config file
3     another clawroomd is already running with this state dir
4     cannot start: unsafe or unusable state dir, key files, database or socket (a state dir that
      exists with group/other access is refused, never chmod-ed; a damaged or foreign database, or
      one that lacks rooms whose transcripts are in rooms/, is refused), the listen address
      cannot be bound, or the socket passed by socket activation is not a listening Unix stream socket
====  ===============================================================================================
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import clawroomd

if TYPE_CHECKING:
    from clawroomd.core.identity import Identity

    from .config import DaemonConfig
    from .store import Store

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_ALREADY_RUNNING = 3
EXIT_CANNOT_START = 4

log = logging.getLogger("clawroomd")

# syslog priorities, for the "<N>" prefixes journald understands when stderr is the journal
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):  # journald adds its own timestamps
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AlreadyRunning(Exception):
    pass


def take_lock(path: os.PathLike[str] | str) -> int:
    """Hold an exclusive flock on `path` for the life of the process; returns the fd (keep it open).

    Raises AlreadyRunning (with the holder's pid, if it wrote one) when another process has it.
    The lock is released by the kernel whenever the process exits, however it exits.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            os.close(fd)
            raise
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError, load_config

    try:
        config = load_config(argv)
    except ConfigError as e:
        print(f"clawroomd: {e}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.log_level)
    from clawroomd.link.limits import raise_fd_limit

    raise_fd_limit()

    from .activation import ActivationError, take_inherited_socket

    try:
        # Before anything else, so that the LISTEN_* variables never reach the commands we run.
        inherited = take_inherited_socket()
    except ActivationError as e:
        log.error("cannot start: socket activation: %s", e)
        return EXIT_CANNOT_START
    if inherited is not None:
        inherited_path = os.fsdecode(inherited.getsockname())
        log.info("local API: socket %s passed in by the supervisor (socket activation)", inherited_path)
        if os.path.abspath(inherited_path) != str(config.socket_path.absolute()):
            log.warning(
                "the inherited socket %s is not the configured --socket %s; serving on the inherited one",
                inherited_path, config.socket_path,
            )  # fmt: skip

    from clawroomd.keyfile import KeyFileError, load_or_create_identity, load_or_create_secret
    from clawroomd.private_files import UnsafeFolder, ensure_private_dir

    from .rpc import SocketSetupError
    from .store import Store, StoreError

    startup_errors = (KeyFileError, SocketSetupError, StoreError, UnsafeFolder, OSError, sqlite3.Error)
    try:
        # Judged before anything is created in it: a refused folder is left exactly as it was.
        ensure_private_dir(config.state_dir, what="the state dir")
    except UnsafeFolder as e:
        log.error("cannot start: %s", e)
        return EXIT_CANNOT_START
    except OSError as e:
        log.error("cannot create the state dir %s: %s", config.state_dir, e.strerror or e)
        return EXIT_CANNOT_START
    try:
        lock_fd = take_lock(config.lock_path)
    except AlreadyRunning as e:
        print(
            f"clawroomd: another clawroomd is already running with state dir {config.state_dir} (pid {e.args[0]})",
            file=sys.stderr,
        )
        return EXIT_ALREADY_RUNNING
    except OSError as e:
        log.error("cannot use state dir %s: %s", config.state_dir, e)
        return EXIT_CANNOT_START
    try:
        try:
            # The store first: a database it refuses leaves no new key files behind either.
            # repair=False: the room registry repairs transcripts once it has verified each room's chain.
            store = Store(config.state_dir, durability=config.durability, repair=False)
        except startup_errors as e:
            log.error("cannot start: %s", e)
            return EXIT_CANNOT_START
        try:
            try:
                identity = load_or_create_identity(config.identity_key_path)
                static_key = load_or_create_secret(config.noise_key_path)
            except startup_errors as e:
                log.error("cannot start: %s", e)
                return EXIT_CANNOT_START
            return _run(config, store, identity, static_key, startup_errors, inherited)
        finally:
            store.close()
    finally:
        os.close(lock_fd)


def _run(
    config: DaemonConfig,
    store: Store,
    identity: Identity,
    static_key: bytes,
    startup_errors: tuple[type[BaseException], ...],
    inherited: socket.socket | None = None,
) -> int:
    import trio

    from .service import run_daemon

    started = False

    async def runner() -> None:
        nonlocal started
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(run_daemon, config, store, identity, static_key, inherited_socket=inherited)
            )
            started = True

    log.info("clawroomd %s starting (pid %d, state dir %s)", clawroomd.__version__, os.getpid(), config.state_dir)
    try:
        trio.run(runner)
    except BaseException as exc:
        leaves = _leaves(exc)
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            log.info("interrupted")
            return EXIT_OK
        if not started and all(isinstance(leaf, startup_errors) for leaf in leaves):
            for leaf in leaves:
                if isinstance(leaf, sqlite3.DatabaseError):
                    db = store.db_path
                    log.error("cannot start: the database %s cannot be read (%s); restore it from a backup", db, leaf)
                else:
                    log.error("cannot start: %s", leaf)
            return EXIT_CANNOT_START
        log.critical("clawroomd crashed", exc_info=exc)
        return EXIT_INTERNAL
    log.info("clawroomd stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
