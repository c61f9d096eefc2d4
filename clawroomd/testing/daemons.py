"""Run a real `clawroomd` in a child process: for the demo, the end-to-end tests and the benchmarks.

Each daemon gets its own private folder (0700) holding its state dir, socket and config file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clawroomd
from clawroomd.client import Client, ClientError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


class DaemonProcess:
    def __init__(
        self,
        folder: Path,
        *,
        name: str = "daemon",
        port: int | None = None,
        tuning: dict[str, Any] | None = None,
        log_level: str = "info",
        env: dict[str, str] | None = None,
        listen_fd: int | None = None,
        netns: str | None = None,
        listen_host: str = "127.0.0.1",
        args: list[str] | None = None,
    ) -> None:
        """`env`: extra environment for the daemon; a PYTHONPATH there goes in front of clawroomd's own
        (tests use it to load a sitecustomize that shifts the daemon's wall clock).
        `listen_fd`: a listening socket handed over as systemd does (fd 3, LISTEN_FDS=1, LISTEN_PID=the
        daemon's pid); `self.socket` should then be its path.
        `netns`: run inside that network namespace (`ip netns exec`, root; see clawroomd.testing.netns), listening
        on `listen_host` there; the local API's Unix socket is a path, reachable from any namespace.
        `args`: more daemon options."""
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.name = name
        self.state_dir = self.folder / "state"
        self.socket = self.folder / "clawroomd.sock"
        self.port = port or free_port()
        self.log_path = self.folder / "clawroomd.log"
        self.config = self.folder / "clawroomd.toml"
        self.config.write_text("[tuning]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in (tuning or {}).items()))
        self.log_level = log_level
        self.extra_env = dict(env or {})
        self.listen_fd = listen_fd
        self.netns = netns
        self.listen_host = listen_host
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process without waiting for it (see `wait_ready`)."""
        argv = [
            sys.executable,
            "-m",
            "clawroomd.daemon",
            "--state-dir",
            str(self.state_dir),
            "--socket",
            str(self.socket),
            "--listen",
            f"{self.listen_host}:{self.port}",
            "--config",
            str(self.config),
            "--log-level",
            self.log_level,
            *self.args,
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CLAWROOM_SOCKET")}
        src = str(Path(clawroomd.__file__).resolve().parent.parent)  # works from a checkout, installed or not
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for key, value in self.extra_env.items():
            env[key] = value + os.pathsep + env[key] if key == "PYTHONPATH" else value
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]  # it execs the daemon: same pid, so kill() works
        activation: dict[str, Any] = {}
        if self.listen_fd is not None:
            # LISTEN_PID must be the daemon's own pid, known only in the child: a shim sets it and execs
            # (same pid). The socket is dup2-ed to fd 3 (without close-on-exec) before the fds are closed.
            shim = "import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[1], sys.argv[1:])"
            argv = [sys.executable, "-c", shim, *argv]
            env.update(LISTEN_FDS="1", LISTEN_FDNAMES="clawroomd-api")
            fd = self.listen_fd
            activation = {"pass_fds": (3,), "preexec_fn": lambda: os.dup2(fd, 3)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, **activation
            )

    def wait_ready(self, timeout: float = 15.0) -> dict[str, Any]:
        """Poll until the daemon answers daemon.info (returned); RuntimeError with its log if it does not."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with Client(self.socket, timeout=2) as c:
                    info: dict[str, Any] = c.call("daemon.info")
                    return info
            except (ClientError, OSError):
                time.sleep(0.03)
        raise RuntimeError(f"{self.name} did not answer within {timeout:g} s:\n{self.log_tail()}")

    def start(self, timeout: float = 15.0) -> DaemonProcess:
        self.launch()
        self.wait_ready(timeout)
        return self

    def client(self, timeout: float | None = 30) -> Client:
        return Client(self.socket, timeout=timeout)

    def call(self, method: str, **params: Any) -> Any:
        with self.client() as c:
            return c.call(method, **params)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, exactly what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def transcript(self, room_id: str) -> str:
        return (self.state_dir / "rooms" / room_id / "transcript.jsonl").read_text()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def daemon_pair(root: Path, *, timeout: float = 20.0) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    """Two daemons `a` and `b` under `root` (quiet logs), stopped on exit: the guest's first, so its link
    closes and the host stops without waiting on it."""
    a = DaemonProcess(root / "a", name="a", log_level="warning").start(timeout)
    try:
        b = DaemonProcess(root / "b", name="b", log_level="warning").start(timeout)
    except BaseException:
        a.stop(timeout=15)
        raise
    try:
        yield a, b
    finally:
        b.stop(timeout=15)
        a.stop(timeout=15)


def wait_for(what: str, cond: Callable[[], Any], timeout: float = 30.0, *, poll: float = 0.02) -> Any:
    """Poll `cond` until it returns something truthy (returned), else AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
