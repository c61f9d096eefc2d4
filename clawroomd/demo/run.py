"""`clawroom demo`: two real daemons on this machine, one room, two scripted agents, one shared result.

Daemon A hosts, daemon B joins with the join URL, exactly as two owners on two machines would (the
link is a real WebSocket on 127.0.0.1 with the Noise handshake and the invite). Each daemon runs the
demo negotiator (`clawroomd.demo.negotiator`) as its agent command; this process only watches A's
transcript, then checks that both daemons hold the same result and the same transcript.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import clawroomd
from clawroomd.cli import render
from clawroomd.cli.commands import watch_events
from clawroomd.cli.main import EXIT_ERROR, EXIT_OK, CommandFailed
from clawroomd.client import ApiError, Client, DaemonNotRunning

TOPIC = "Negotiate API Contract for Payments v3"
GOAL = "Align on the Payments v3 contract"
FIELDS = [
    {"name": "amount_format", "description": "how amounts are written in requests and webhooks"},
    {"name": "idempotency_policy", "description": "when clients must send an Idempotency-Key"},
    {"name": "webhook_retry_policy", "description": "retry schedule for failed webhook deliveries"},
    {"name": "hash_algorithm", "description": "how webhook payloads are hashed for integrity"},
]
LABELS = {"host": "stripe-agent", "guest": "backend-agent"}
START_TIMEOUT = 20.0  # seconds for a daemon to answer daemon.info
ROOM_TIMEOUT = 30.0  # seconds of silence before the demo gives up on the negotiation


class DemoFailed(CommandFailed):
    """The demo could not run to the end; the message says where it stopped."""


class Daemon:
    def __init__(self, name: str, role: str, root: Path) -> None:
        self.name, self.role = name, role
        self.state_dir = root / role
        self.state_dir.mkdir(mode=0o700)
        self.socket = self.state_dir / "clawroomd.sock"
        self.log_path = root / f"{role}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CLAWROOM_SOCKET")}
        src = str(Path(clawroomd.__file__).resolve().parent.parent)  # works from a checkout, installed or not
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(self.state_dir)]
        argv += ["--listen", "127.0.0.1:0", "--socket", str(self.socket), "--log-level", "info"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def wait_ready(self, deadline: float) -> dict[str, Any]:
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise DemoFailed(f"daemon {self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with Client(self.socket, timeout=5) as c:
                    self.info = c.call("daemon.info")
                    return self.info
            except (DaemonNotRunning, ApiError):
                pass
            if time.monotonic() > deadline:
                raise DemoFailed(f"daemon {self.name} did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")
            time.sleep(0.03)

    def client(self, timeout: float | None = 30) -> Client:
        return Client(self.socket, timeout=timeout)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _agent(role: str) -> list[str]:
    return [sys.executable, "-m", "clawroomd.demo.negotiator", "--role", role]


def _stop(daemons: list[Daemon]) -> None:
    """SIGTERM, guest first (its link then closes at once and the host stops without waiting on it)."""
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()


def run_demo(*, keep: bool = False, as_json: bool = False) -> int:
    say = (lambda *a, **k: None) if as_json else (lambda *a, **k: print(*a, **k, flush=True))
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="clawroom-demo-"))  # mode 0700
    os.chmod(root, 0o700)
    host, guest = Daemon("A", "host", root), Daemon("B", "guest", root)
    failed = True
    try:
        say("Starting two clawroomd daemons on 127.0.0.1 (state in a private temp folder)...")
        for d in (host, guest):
            d.start()
        deadline = time.monotonic() + START_TIMEOUT
        for d in (host, guest):
            info = d.wait_ready(deadline)
            say(
                f"  daemon {d.name} ({d.role:<5}) ready after {time.monotonic() - started:.2f}s: "
                f"peer {render.short_id(info['peer_id'])}, listening on {', '.join(info['listen'])}"
            )
        report = _negotiate(host, guest, say)
        report["elapsed_s"] = round(time.monotonic() - started, 3)
        failed = not report["agree"] or report["status"] != "agreement_reached"
    except (DemoFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise DemoFailed(f"the demo failed: {exc}; state and daemon logs are kept in {root}") from exc
    finally:
        _stop([guest, host])
        kept = keep or failed
        if not kept:
            shutil.rmtree(root, ignore_errors=True)
    report["kept"] = {"host": str(host.state_dir), "guest": str(guest.state_dir)} if kept else None
    if as_json:
        print(json.dumps(report, ensure_ascii=False), flush=True)
    else:
        say(f"\nStopped both daemons ({time.monotonic() - started:.1f}s in all).")
        if kept:
            say(f"State kept: host {host.state_dir}, guest {guest.state_dir} (logs: {root}/*.log).")
        else:
            say("Removed the temporary state folders (use --keep to look at them).")
    return EXIT_ERROR if failed else EXIT_OK


def _negotiate(host: Daemon, guest: Daemon, say: Any) -> dict[str, Any]:
    with host.client() as a:
        view = a.call(
            "room.create",
            topic=TOPIC,
            goal=GOAL,
            fields=FIELDS,
            max_turns=20,
            label=LABELS["host"],
            agent_command=_agent("host"),
            turn_timeout_s=60,
            deadline_s=600,
        )
    room_id, url = view["room_id"], view["join_url"]
    say(f"\nDaemon A created room {room_id}: {TOPIC}")
    say(f"Join URL: {url}")
    say("Daemon B joins with it; each daemon runs `python -m clawroomd.demo.negotiator` on its own turns.\n")
    say("Room Transcript (as daemon A records it)")
    with host.client(timeout=None) as watch:
        parts = {**view["participants"], "guest": {"label": LABELS["guest"]}}  # align columns from line one
        renderer = render.TranscriptRenderer(parts)
        notes = watch_events(watch, room_id, silence=ROOM_TIMEOUT)
        with guest.client(timeout=45) as b:
            b.call("room.join", join_url=url, label=LABELS["guest"], agent_command=_agent("guest"), timeout_s=30)
        try:
            for note in notes:
                if note["method"] == "room.event":
                    say(renderer.line(note["params"]["event"]))
        except TimeoutError:
            raise DemoFailed(f"the room stalled ({ROOM_TIMEOUT:g} s without an event):\n{host.log_tail()}") from None
        card = watch.call("room.status", room_id=room_id)
    say("\n" + render.status_card(card) + "\n")

    results, transcripts = {}, {}
    for d in (host, guest):
        with d.client() as c:
            results[d.role] = _wait_result(c, room_id)
            transcripts[d.role] = c.call("room.transcript", room_id=room_id)["events"]
    ra, rb = results["host"], results["guest"]
    same = {key: ra.get(key) == rb.get(key) for key in ("status", "outcomes", "unresolved", "digest", "head", "events")}
    same["transcript"] = [e["hash"] for e in transcripts["host"]] == [e["hash"] for e in transcripts["guest"]]
    agree = all(same.values())
    say("Results, as each daemon wrote its own:")
    for d in (host, guest):
        r = results[d.role]
        say(
            f"  daemon {d.name} ({d.role:<5}): {r['status']} · outcomes {len(r['outcomes'])}/{len(FIELDS)} · "
            f"turns {r['turns']} · {r['events']} events · head {r['head'][:16]}"
        )
    if agree:
        say(f"Both daemons agree: same status, outcomes, outcome digest and transcript (head {ra['head'][:16]}).")
    else:
        say("The daemons DISAGREE on: " + ", ".join(k for k, ok in same.items() if not ok))
    return {
        "room_id": room_id,
        "join_url": url,
        "status": ra["status"],
        "agree": agree,
        "same": same,
        "heads_equal": same["head"],
        "host": ra,
        "guest": rb,
        "transcript": transcripts["host"],
    }


def _wait_result(c: Client, room_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """room.result once the room_closed event has reached this daemon too."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.call("room.result", room_id=room_id)
        except ApiError as err:
            if err.code != "not_ready" or time.monotonic() > deadline:
                raise
        time.sleep(0.02)
