"""systemd socket activation: take the local API's listening socket from ``LISTEN_PID``/``LISTEN_FDS``.

The protocol (sd_listen_fds(3)): the supervisor passes listening sockets as fds 3, 4, ... and sets
``LISTEN_FDS`` to their count, ``LISTEN_PID`` to the pid they are meant for (so that a child that inherits
the environment does not take them too) and optionally ``LISTEN_FDNAMES`` (colon-separated names). We
serve the local API on exactly one socket; with several, the one named ``FD_NAME`` is taken (the
``FileDescriptorName=`` of systemd/clawroomd.socket), else the first.

The variables are removed from os.environ in every case, so the commands the daemon runs (agents,
hooks) never see them; fds we do not take get close-on-exec.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import MutableMapping

SD_LISTEN_FDS_START = 3
FD_NAME = "clawroomd-api"  # FileDescriptorName= in systemd/clawroomd.socket
_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """The supervisor passed something we cannot serve the local API on; the message says what."""


def take_inherited_socket(
    env: MutableMapping[str, str] | None = None, *, pid: int | None = None
) -> socket.socket | None:
    """The inherited local-API listening socket, or None when none is meant for this process.

    Raises ActivationError when LISTEN_* is meant for us but is malformed or the fd is not a listening
    AF_UNIX stream socket. Pops the LISTEN_* variables from `env` (default os.environ) either way.
    """
    env = os.environ if env is None else env
    pid = os.getpid() if pid is None else pid
    listen_pid, listen_fds, names = (env.pop(k, None) for k in _VARS)
    if listen_pid is None or listen_fds is None:
        return None
    if not listen_pid.isdigit() or int(listen_pid) != pid:
        return None  # meant for another process (e.g. our parent): not ours to touch
    if not listen_fds.isdigit() or int(listen_fds) < 1:
        raise ActivationError(f"LISTEN_FDS={listen_fds!r} is not a positive count of inherited sockets")
    count = int(listen_fds)
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)
    labels = names.split(":") if names else []
    chosen = fds[labels.index(FD_NAME)] if len(labels) == count and FD_NAME in labels else fds[0]
    for fd in fds:
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError as e:
            raise ActivationError(f"LISTEN_FDS={count} but fd {fd} is not open ({e.strerror})") from None
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)  # agents and hooks must not inherit them
    return _check_listener(chosen)


def _check_listener(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ActivationError(f"inherited fd {fd} is not a socket ({e.strerror})") from None
    try:
        accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        accepting = 0
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not accepting:
        what = f"{sock.family.name} {sock.type.name}{'' if accepting else ', not listening'}"
        sock.detach()  # leave the supervisor's fd as it was
        raise ActivationError(
            f"inherited fd {fd} is a {what} socket; the local API needs a listening AF_UNIX SOCK_STREAM "
            "socket (ListenStream=/path in the .socket unit)"
        )
    return sock
