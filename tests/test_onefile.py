"""The single-file build: scripts/build_pyz makes one .pyz that is the daemon and the CLI.

The build runs shiv, which has pip fetch the dependencies; without network (or without shiv) it
fails, and so does this test: CI has the registries, and a skip would hide a broken build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawroomd.client import Client, ClientError
from clawroomd.onefile import choose

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 300.0  # seconds: pip resolves and downloads the dependencies
RUN_TIMEOUT = 60.0  # seconds for one command of the pyz (its first start unpacks ~25 MB; the machine is shared)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/x/clawroomd.pyz", "--state-dir", "s"], ("daemon", ["--state-dir", "s"])),
        (["/x/clawroomd.pyz"], ("daemon", [])),
        (["/x/clawroomd.pyz", "clawroom", "info", "--json"], ("cli", ["info", "--json"])),
        (["/usr/local/bin/clawroom", "info"], ("cli", ["info"])),
        (["clawroom"], ("cli", [])),
        (["/x/clawroomd.pyz", "clawroomd", "--help"], ("daemon", ["--help"])),
        (["/x/clawroom", "clawroom"], ("cli", ["clawroom"])),  # the CLI sees it and says it is no command
        (["/x/clawroomd.pyz", "--socket", "clawroom"], ("daemon", ["--socket", "clawroom"])),  # only argv[1] counts
        ([], ("daemon", [])),
    ],
)
def test_the_name_or_the_first_argument_picks_the_program(argv: list[str], expected: tuple[str, list[str]]) -> None:
    assert choose(argv) == expected


def _env(shiv_root: Path) -> dict[str, str]:
    """No PYTHONPATH: the pyz must run on what it carries, not on this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLAWROOM_SOCKET", "NOTIFY_SOCKET")}
    env["SHIV_ROOT"] = str(shiv_root)
    return env


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist") / "clawroomd.pyz"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_pyz"), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"the build failed (it needs shiv and pip's index):\n{done.stdout}\n{done.stderr}"
    assert out.is_file() and os.access(out, os.X_OK)
    print(f"built {out.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")
    yield out


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=RUN_TIMEOUT, check=False)


def _wait_ready(proc: subprocess.Popen[bytes], sock: Path, log: Path) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with Client(sock, timeout=2) as c:
                c.call("daemon.info")
                return
        except (ClientError, OSError):
            time.sleep(0.05)
    raise AssertionError(f"the daemon did not answer in {RUN_TIMEOUT:g} s:\n{log.read_text(errors='replace')}")


@pytest.mark.slow
def test_one_file_runs_the_daemon_and_the_cli(pyz: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = _env(tmp_path / "shiv")
    state, sock, log = home / "state", home / "clawroomd.sock", home / "clawroomd.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [str(pyz), "--state-dir", str(state), "--socket", str(sock), "--listen", "127.0.0.1:0"],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
    try:
        _wait_ready(daemon, sock, log)
        # the code that runs is the copy the pyz unpacked, not this checkout
        assert list((tmp_path / "shiv").glob("clawroomd.pyz_*/site-packages/clawroomd/onefile.py"))

        as_argument = _run([sys.executable, str(pyz), "clawroom", "--socket", str(sock), "info", "--json"], env, home)
        assert as_argument.returncode == 0, as_argument.stderr
        info = json.loads(as_argument.stdout)
        assert info["state_dir"] == str(state) and info["socket"] == str(sock)
        assert info["listen"] and all(a.startswith("127.0.0.1:") for a in info["listen"])

        link = tmp_path / "bin" / "clawroom"
        link.parent.mkdir()
        link.symlink_to(pyz)
        by_name = _run([str(link), "--socket", str(sock), "info", "--json"], env, home)
        assert by_name.returncode == 0, by_name.stderr
        assert json.loads(by_name.stdout)["peer_id"] == info["peer_id"]

        refused = _run([str(link), "--socket", str(sock), "no-such-command"], env, home)
        assert refused.returncode != 0 and "clawroom" in refused.stderr  # the CLI's own usage error
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(RUN_TIMEOUT)
    assert code == 0, log.read_text(errors="replace")
    assert not sock.exists()  # a clean stop removes its socket
