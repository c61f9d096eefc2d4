"""The real daemon as a subprocess: readiness, daemon.info, single instance, clean stop; config parsing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawroomd.client import Client, default_socket_path, default_state_dir, resolve_socket_path
from clawroomd.daemon.config import ConfigError, load_config, parse_listen
from clawroomd.daemon.main import EXIT_ALREADY_RUNNING, EXIT_CANNOT_START, EXIT_USAGE

ROOT = Path(__file__).resolve().parent.parent


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "XDG_RUNTIME_DIR")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def start_daemon(state: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(state), "--listen", "127.0.0.1:0", *args],
        env=daemon_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(15)
    yield sock, path
    sock.close()


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float = 15) -> str:
    sock.settimeout(0.05)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            continue
        sock.settimeout(15)
        assert "READY=1" in msg.splitlines(), msg
        return msg
    if proc.poll() is None:
        proc.kill()
    pytest.fail(f"no READY=1 (exit code {proc.wait()}); daemon stderr: {proc.communicate()[1].decode()}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err.decode()


def test_daemon_lifecycle(tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, notify_path = notify_socket
    state = tmp_path / "state"
    proc = start_daemon(state, NOTIFY_SOCKET=notify_path)
    try:
        msg = wait_ready(sock, proc)
        assert any(line.startswith("STATUS=") for line in msg.splitlines())
        sock_path = state / "clawroomd.sock"  # an explicit --state-dir keeps its socket inside
        assert sock_path.exists() and default_socket_path(state) == sock_path
        with Client(sock_path, timeout=10) as c:
            info = c.call("daemon.info")
        assert info["state_dir"] == str(state) and info["socket"] == str(sock_path)
        assert info["version"] and len(info["peer_id"].replace("-", "")) == 56
        # a second daemon on the same state dir refuses, and the first one is unharmed
        second = subprocess.run(
            [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(state), "--listen", "127.0.0.1:0"],
            env=daemon_env(), capture_output=True, timeout=30,
        )  # fmt: skip
        assert second.returncode == EXIT_ALREADY_RUNNING
        expected = f"another clawroomd is already running with state dir {state} (pid {proc.pid})"
        assert expected in second.stderr.decode()
        with Client(sock_path, timeout=10) as c:
            assert c.call("daemon.info")["peer_id"] == info["peer_id"]
        code, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, err
    assert "received SIGTERM" in err and "stopped" in err
    assert not sock_path.exists()
    assert "STOPPING=1" in sock.recv(4096).decode()
    # the identity persists across restarts; a NOTIFY_SOCKET nobody listens on is logged, not fatal
    proc = start_daemon(state, NOTIFY_SOCKET=f"@clawroom-nobody-{os.getpid()}")
    try:
        deadline = time.monotonic() + 15
        while not sock_path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        with Client(sock_path, timeout=10) as c:
            assert c.call("daemon.info")["peer_id"] == info["peer_id"]
        code, err = stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, err
    assert not sock_path.exists()


def test_abstract_notify_socket(tmp_path: Path) -> None:
    name = f"clawroom-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(15)
    proc = start_daemon(tmp_path / "state", NOTIFY_SOCKET="@" + name)
    try:
        wait_ready(sock, proc)
    finally:
        stop(proc)
        sock.close()


def test_bad_usage_and_unsafe_files_exit_codes(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(tmp_path / "s"), "--listen", "nope"],
        env=daemon_env(), capture_output=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == EXIT_USAGE and "HOST:PORT" in bad.stderr.decode()
    state = tmp_path / "s2"
    state.mkdir(mode=0o700)
    (state / "identity.key").write_bytes(b"x" * 32)
    os.chmod(state / "identity.key", 0o644)
    unsafe = subprocess.run(
        [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(state), "--listen", "127.0.0.1:0"],
        env=daemon_env(), capture_output=True, timeout=30,
    )  # fmt: skip
    assert unsafe.returncode == EXIT_CANNOT_START and "chmod 600" in unsafe.stderr.decode()


# ------------------------------------------------------------------------------------ config, in-process
def test_config_defaults_and_file(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    c = load_config([], env)
    assert c.state_dir == tmp_path / "home" / ".local" / "state" / "clawroom"
    assert c.socket_path == tmp_path / "run" / "clawroom" / "clawroomd.sock"
    assert (c.listen_host, c.listen_port, c.log_level, c.durability) == ("0.0.0.0", 7643, "info", "normal")
    assert c.config_file is None and dict(c.extra) == {}
    env2 = {"XDG_STATE_HOME": str(tmp_path / "xs")}
    assert load_config([], env2).socket_path == tmp_path / "xs" / "clawroom" / "clawroomd.sock"
    assert default_state_dir(env2) == tmp_path / "xs" / "clawroom"

    cfg = tmp_path / "etc" / "clawroomd.toml"
    cfg.parent.mkdir()
    cfg.write_text(
        'state_dir = "state"\nlisten = "[::1]:9000"\nlog_level = "DEBUG"\ndurability = "full"\n'
        "max_request = 4096\n[delivery]\nhook = \"notify-send\"\n"
    )
    c = load_config(["--config", str(cfg)], env)
    assert c.state_dir == tmp_path / "etc" / "state" and c.socket_path == c.state_dir / "clawroomd.sock"
    assert (c.listen_host, c.listen_port, c.listen) == ("::1", 9000, "[::1]:9000")
    assert (c.log_level, c.durability, c.max_request) == ("debug", "full", 4096)
    assert c.extra["delivery"] == {"hook": "notify-send"} and c.config_file == cfg
    c = load_config(["--config", str(cfg), "--listen", "127.0.0.1:0", "--log-level", "warning"], env)
    assert (c.listen, c.log_level, c.durability) == ("127.0.0.1:0", "warning", "full")
    assert c.advertise == ()
    cfg.write_text('advertise = ["192.0.2.10:7643", "[2001:db8::1]:7643"]\n')
    assert load_config(["--config", str(cfg)], env).advertise == ("192.0.2.10:7643", "[2001:db8::1]:7643")
    c = load_config(["--config", str(cfg), "--advertise", "198.51.100.7:1", "--advertise", "h.example:2"], env)
    assert c.advertise == ("198.51.100.7:1", "h.example:2")  # the command line wins over the file


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ('lisen = "x:1"', "unknown setting"),
        ('durability = "maybe"', "durability"),
        ('log_level = "loud"', "log_level"),
        ("max_request = 5", "max_request"),
        ('listen = "127.0.0.1:70000"', "out of range"),
        ("listen = 5", "listen"),
        ("= broken", "not valid TOML"),
        ('advertise = "192.0.2.1:1"', "advertise"),
        ('advertise = ["no-port"]', "HOST:PORT"),
    ],
)
def test_config_errors(tmp_path: Path, toml: str, match: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_config(["--config", str(cfg)], {"HOME": str(tmp_path)})


def test_parse_listen_and_socket_resolution(tmp_path: Path) -> None:
    assert parse_listen("localhost:1") == ("localhost", 1)
    assert parse_listen("[fe80::1%eth0]:7643") == ("fe80::1%eth0", 7643)
    for bad in ("7643", "::1:7643", "host:", "a b:1"):
        with pytest.raises(ConfigError):
            parse_listen(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(["--config", str(tmp_path / "missing.toml")], {})
    env = {"CLAWROOM_SOCKET": "/x/y.sock", "HOME": str(tmp_path)}
    assert resolve_socket_path(env=env) == Path("/x/y.sock")
    assert resolve_socket_path("/given", env=env) == Path("/given")
    in_state = resolve_socket_path(state_dir=tmp_path / "s", env={"HOME": str(tmp_path)})
    assert in_state == tmp_path / "s" / "clawroomd.sock"
