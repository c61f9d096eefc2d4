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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clawroomd.client import ApiError, Client, watch_events
from clawroomd.testing import DaemonProcess, free_port

from . import render
from .exits import EXIT_ERROR, EXIT_OK, CommandFailed

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


class Daemon(DaemonProcess):
    """A demo daemon: a real clawroomd process, known by its letter and its role in the room."""

    def __init__(self, name: str, role: str, root: Path) -> None:
        super().__init__(root / role, name=name, port=free_port())
        self.role = role


def _agent(role: str) -> list[str]:
    return [sys.executable, "-m", "clawroomd.demo.negotiator", "--role", role]


def _stop(daemons: list[Daemon]) -> None:
    """SIGTERM, guest first (its link then closes at once and the host stops without waiting on it)."""
    for d in daemons:
        d.stop()


def run_demo(*, keep: bool = False, as_json: bool = False) -> int:
    def say(*args: Any, **kw: Any) -> None:
        if not as_json:
            print(*args, **kw, flush=True)

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="clawroom-demo-"))  # mode 0700
    os.chmod(root, 0o700)
    host, guest = Daemon("A", "host", root), Daemon("B", "guest", root)
    failed = True
    try:
        say("Starting two clawroomd daemons on 127.0.0.1 (state in a private temp folder)...")
        for d in (host, guest):
            d.launch()
        for d in (host, guest):
            try:
                info = d.wait_ready(START_TIMEOUT)
            except RuntimeError as exc:
                raise DemoFailed(f"daemon {d.name} did not start: {exc}") from None
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
            say(
                f"State kept: host {host.state_dir}, guest {guest.state_dir} (logs: {host.log_path}, {guest.log_path})."
            )
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
            result: dict[str, Any] = c.call("room.result", room_id=room_id)
            return result
        except ApiError as err:
            if err.code != "not_ready" or time.monotonic() > deadline:
                raise
        time.sleep(0.02)
