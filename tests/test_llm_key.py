"""The API key of `clawroom create|join --agent-llm` never lands on a command line, in a log or on disk,
and still reaches the model: two real daemons in subprocesses (started without the key), the real CLI,
the real driver, and `llm_server.ModelServer` (an OpenAI-compatible server on 127.0.0.1 with canned
model replies; no model runs here). While serving each request the server reads every process's
command line, the driver's included."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from llm_server import ModelServer, action

from clawroomd.testing import DaemonProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # real processes: the daemons' agent runs, the driver's HTTP
KEY_ENV = "CLAWROOM_TEST_LLM_SECRET"


def clawroom(d: DaemonProcess, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CLAWROOM_SOCKET", KEY_ENV)}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(d.socket), "--json", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_key_reaches_the_model_and_nothing_else(tmp_path: Path) -> None:
    assert KEY_ENV not in os.environ
    host_key = "sk-host-" + secrets.token_hex(16)  # handed over by the host's CLI
    guest_key = "sk-guest-" + secrets.token_hex(16)  # in the guest daemon's own environment
    offer = action(text="100", moves=[{"op": "propose", "field": "price", "value": "100"}])
    scripts = {
        "host-model": [offer, action("close")],
        "guest-model": [action(text="ok", moves=[{"op": "accept", "field": "price"}]), action("close")],
    }
    host = DaemonProcess(tmp_path / "host", name="host", log_level="debug")
    guest = DaemonProcess(tmp_path / "guest", name="guest", log_level="debug", env={KEY_ENV: guest_key})
    with ModelServer(scripts) as server:
        try:
            host.start(timeout=20)
            guest.start(timeout=20)
            llm = ["--base-url", server.base_url, "--api-key-env", KEY_ENV]
            made = clawroom(
                host, "create", "--topic", "price", "--field", "price", "--agent-llm", "host-model", *llm,
                env={KEY_ENV: host_key},
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            room = json.loads(made.stdout)
            joined = clawroom(guest, "join", room["join_url"], "--agent-llm", "guest-model", *llm, env={})
            assert joined.returncode == 0, joined.stderr
            rid = room["room_id"]

            def result(d: DaemonProcess) -> dict[str, str] | None:
                r = clawroom(d, "result", "--room", rid, env={})
                return json.loads(r.stdout) if r.returncode == 0 else None

            for d in (host, guest):
                assert wait_for("the result", lambda d=d: result(d), timeout=60)["status"] == "agreement_reached"
        finally:
            guest.stop()
            host.stop()
    assert len(server.requests) == 4
    for req in server.requests:
        expected = host_key if req.model == "host-model" else guest_key
        assert req.headers["authorization"] == f"Bearer {expected}"  # it got there
        driver = [c for c in req.cmdlines if "clawroomd.llm" in c and req.model in c]
        assert driver and f"--api-key-env {KEY_ENV}" in driver[0]  # the driver was running: named, not given
        for cmdline in req.cmdlines:
            assert host_key not in cmdline and guest_key not in cmdline
    for out in (made.stdout, made.stderr, joined.stdout, joined.stderr):
        assert host_key not in out
    for d in (host, guest):
        log = d.log_path.read_bytes()
        assert b"the agent command answered seq" in log  # a debug log that did cover the agent's runs
        assert host_key.encode() not in log and guest_key.encode() not in log
        for path in d.state_dir.rglob("*"):  # the database (and its WAL), the room files
            if path.is_file():
                assert host_key.encode() not in path.read_bytes(), path
