"""The systemd units (checked offline with systemd-analyze) and socket activation of the real daemon.

systemd is not PID 1 here, so the units are never started by systemd itself: `systemd-analyze verify`
and `security --offline=true` judge them, and the activation test hands the daemon its socket exactly as
systemd does (fd 3, LISTEN_FDS=1, LISTEN_PID=the daemon's own pid, LISTEN_FDNAMES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clawroomd.client import Client
from clawroomd.daemon.activation import ActivationError, take_inherited_socket
from clawroomd.testing.daemons import DaemonProcess

UNITS = Path(__file__).resolve().parent.parent / "systemd"
INSTALLED_PATH = "/usr/local/bin/clawroomd"  # the ExecStart path written in the unit
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs Debian's systemd package)"
)


def _render(tmp_path: Path) -> Path:
    """The units in tmp_path with ExecStart pointing at an executable that exists on this machine."""
    exe = shutil.which("clawroomd")
    if exe is None:  # not installed: a test copy that starts this checkout's daemon
        stub = tmp_path / "clawroomd"
        stub.write_text(f"#!/bin/sh\nexec {sys.executable} -m clawroomd.daemon \"$@\"\n")
        stub.chmod(0o755)
        exe = str(stub)
    out = tmp_path / "units"
    out.mkdir()
    for unit in ("clawroomd.service", "clawroomd.socket"):
        text = (UNITS / unit).read_text()
        (out / unit).write_text(text.replace(INSTALLED_PATH, exe))
    assert INSTALLED_PATH in (UNITS / "clawroomd.service").read_text()
    return out


@needs_analyze
def test_units_verify(tmp_path: Path) -> None:
    units = _render(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}  # a user manager needs one to expand %t
    result = subprocess.run(
        [str(ANALYZE), "verify", "--user", "./clawroomd.socket", "./clawroomd.service"],
        cwd=units, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # verify only warns (exit 0) about some problems, e.g. an unknown key: any output is a failure
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_service_security_exposure(tmp_path: Path) -> None:
    unit = _render(tmp_path) / "clawroomd.service"
    # --threshold counts in tenths of the printed 0.0-10.0 level (exit 1 above it): 20 means 2.0
    args = [str(ANALYZE), "security", "--offline=true", f"--threshold={round(MAX_EXPOSURE * 10)}"]
    as_json = subprocess.run([*args, "--json=short", str(unit)], capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stdout[-2000:] + as_json.stderr
    checks = json.loads(as_json.stdout)
    unset = {c["name"] for c in checks if not c["set"]}
    for must in ("NoNewPrivileges=", "ProtectSystem=", "PrivateTmp=", "CapabilityBoundingSet=~CAP_SYS_ADMIN"):
        assert must not in unset
    text = subprocess.run([*args, str(unit)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for clawroomd\.service: (\d+\.\d)", text.stdout)
    assert m, text.stdout[-2000:]
    assert float(m.group(1)) <= MAX_EXPOSURE
    print(f"systemd-analyze security exposure: {m.group(1)}")


def _listening_unix_socket(path: Path) -> socket.socket:
    """What systemd does for ListenStream=PATH with SocketMode=0600 and DirectoryMode=0700."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def test_daemon_serves_inherited_socket_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "run" / "clawroomd.sock"
    listener = _listening_unix_socket(path)
    ino = path.stat().st_ino
    daemon = DaemonProcess(tmp_path / "d", listen_fd=listener.fileno())
    daemon.socket = path
    try:
        daemon.launch()  # the test keeps its copy open, as systemd does, while the daemon serves
        info = daemon.wait_ready(timeout=30)
        assert info["peer_id"]
        with Client(path, timeout=10) as c:
            assert c.call("daemon.info")["peer_id"] == info["peer_id"]
        log = daemon.log_path.read_text()
        assert "passed in by the supervisor" in log
        assert "removing stale socket" not in log
    finally:
        code = daemon.stop(timeout=30)
        listener.close()
    assert code == 0, daemon.log_tail()
    # systemd owns the file: it must survive the daemon's stop (the same inode, still a socket)
    st = path.lstat()
    assert stat.S_ISSOCK(st.st_mode) and st.st_ino == ino


def test_daemon_refuses_an_inherited_socket_it_cannot_serve(tmp_path: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    daemon = DaemonProcess(tmp_path / "d", listen_fd=udp.fileno())
    try:
        daemon.launch()
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=30) == 4  # EXIT_CANNOT_START
    finally:
        udp.close()
        daemon.stop()
    log = daemon.log_path.read_text()
    assert "needs a listening AF_UNIX SOCK_STREAM socket" in log
    assert not daemon.state_dir.exists()  # refused before anything was created


def test_listen_vars_for_another_pid_are_ignored_and_removed() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "HOME": "/h"}
    assert take_inherited_socket(env) is None
    assert env == {"HOME": "/h"}
    assert take_inherited_socket({}) is None


def test_malformed_listen_fds_is_a_clear_error() -> None:
    with pytest.raises(ActivationError, match="LISTEN_FDS='0'"):
        take_inherited_socket({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"})
