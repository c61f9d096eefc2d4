"""`clawroom demo`: the product page's story, for real: two daemons on this machine, two owners, one room,
one escalation, two summaries, two verified results.

Daemon A hosts, daemon B joins with the join URL, exactly as two owners on two machines would (the
link is a real WebSocket on 127.0.0.1 with the Noise handshake and the invite). Each owner's context is
written first (demo_story.py: a payments infrastructure lead hosting, a backend platform engineer as the
guest, each with a private fact, the host with an approval limit). Each daemon runs the demo negotiator
(`clawroomd.demo.negotiator`) as its agent command. The host's agent meets its limit and asks its owner;
this process plays that owner and approves. It shows the room live (the live card on a terminal, the
transcript otherwise), then checks that both daemons hold the same result and transcript, verifies both
final_result.json files as `clawroom verify` does, prints both owners' summary.md, and checks that
neither private fact reached the other daemon.
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

from clawroomd.client import watch_events
from clawroomd.testing import DaemonProcess, free_port

from . import render
from .demo_story import OWNERS, PROFILES, SECRETS, DemoOwner, leaks, owner_line
from .exits import EXIT_ERROR, EXIT_OK, CommandFailed
from .live_card import card_lines

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
PACE_S = 0.4  # on a terminal: each agent waits this long before replying, so a person can follow
ANSWER_DELAY_S = 1.2  # on a terminal: how long the owner's question stays on the card before the answer


class DemoFailed(CommandFailed):
    """The demo could not run to the end; the message says where it stopped."""


class Daemon(DaemonProcess):
    """A demo daemon: a real clawroomd process, known by its letter and its role in the room."""

    def __init__(self, name: str, role: str, root: Path) -> None:
        super().__init__(root / role, name=name, port=free_port())
        self.role = role


def _agent(role: str, pace: float) -> list[str]:
    return [sys.executable, "-m", "clawroomd.demo.negotiator", "--role", role, "--pace", str(pace)]


def _stop(daemons: list[Daemon]) -> None:
    """SIGTERM, guest first (its link then closes at once and the host stops without waiting on it)."""
    for d in daemons:
        d.stop()


def run_demo(*, keep: bool = False, as_json: bool = False, live: bool | None = None) -> int:
    """`live`: show the live card (None: when stdout is a terminal and not --json)."""

    def say(*args: Any, **kw: Any) -> None:
        if not as_json:
            print(*args, **kw, flush=True)

    live = (sys.stdout.isatty() and not as_json) if live is None else live
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
        say("\nEach owner writes down what their agent negotiates from (the owner-context API; kept on their daemon):")
        for d in (host, guest):
            d.call("context.write", profile=PROFILES[d.role], fields=OWNERS[d.role], replace=True)
            say(f"  daemon {d.name}, {d.role:<5} {owner_line(d.role)}")
        report = _negotiate(host, guest, say, live=live)
        report["elapsed_s"] = round(time.monotonic() - started, 3)
        failed = not report["ok"]
    except KeyboardInterrupt:
        failed = False  # stopped by the person watching: nothing to look into, so nothing is kept
        raise
    except DemoFailed:
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


def _negotiate(host: Daemon, guest: Daemon, say: Any, *, live: bool) -> dict[str, Any]:
    pace = PACE_S if live else 0.0
    view = host.call(
        "room.create",
        topic=TOPIC,
        goal=GOAL,
        fields=FIELDS,
        max_turns=20,
        label=LABELS["host"],
        agent_command=_agent("host", pace),
        context=PROFILES["host"],
        turn_timeout_s=60,
        deadline_s=600,
    )
    room_id, url = view["room_id"], view["join_url"]
    say(f"\nDaemon A created room {room_id}: {TOPIC}")
    say(f"Join URL: {url}")
    say("Daemon B joins with it; each daemon runs `python -m clawroomd.demo.negotiator` on its own turns.")
    owner = DemoOwner(host.client, room_id, LABELS["host"], delay=ANSWER_DELAY_S if live else 0.0)
    if live:
        _join(guest, url, pace)
        from .live_view import watch

        moved = {"seq": -1, "at": time.monotonic()}

        def hook(v: dict[str, Any]) -> list[str]:
            if v["seq"] != moved["seq"]:
                moved.update(seq=v["seq"], at=time.monotonic())
            elif v.get("result") is None and time.monotonic() - moved["at"] > ROOM_TIMEOUT:
                raise DemoFailed(f"the room stalled ({ROOM_TIMEOUT:g} s without an event):\n{host.log_tail()}")
            if "host" in (v.get("consulting") or []):
                owner.poll()
            return owner.lines()

        watch(host.socket, room_id, hook=hook, tty=True)  # ends with the final card, as plain lines
        for line in owner.lines():
            say(line)
        transcript = host.call("room.transcript", room_id=room_id)["events"]
    else:
        transcript = _follow(host, guest, url, pace, room_id, owner, say)
        card = host.call("room.status", room_id=room_id)
        say("\n" + "\n".join(card_lines(card, transcript, now_ms=time.time() * 1000)))
    if not owner.records:
        raise DemoFailed("the host's agent never asked its owner: the escalation did not happen")
    return _check(host, guest, room_id, url, owner, say)


def _join(guest: Daemon, url: str, pace: float) -> None:
    with guest.client(timeout=45) as b:
        b.call(
            "room.join",
            join_url=url,
            label=LABELS["guest"],
            agent_command=_agent("guest", pace),
            context=PROFILES["guest"],
            timeout_s=30,
        )


def _follow(
    host: Daemon, guest: Daemon, url: str, pace: float, room_id: str, owner: DemoOwner, say: Any
) -> list[dict[str, Any]]:
    """Not on a terminal: the transcript as daemon A records it, the escalation where it happens."""
    say("\nRoom Transcript (as daemon A records it)")
    events = []
    with host.client(timeout=None) as watch:
        parts = {"host": {"label": LABELS["host"]}, "guest": {"label": LABELS["guest"]}}  # align from line one
        renderer = render.TranscriptRenderer(parts)
        notes = watch_events(watch, room_id, silence=ROOM_TIMEOUT)
        _join(guest, url, pace)
        try:
            for note in notes:
                if note["method"] != "room.event":
                    continue
                event = note["params"]["event"]
                events.append(event)
                say(renderer.line(event))
                if event["kind"] == "consult_started" and event["author"] == "host" and owner.poll():
                    for line in owner.lines()[-2:]:
                        say(" " * (len(render.fmt_offset(0)) + renderer.width + 2) + line)
        except TimeoutError:
            raise DemoFailed(f"the room stalled ({ROOM_TIMEOUT:g} s without an event):\n{host.log_tail()}") from None
    return events


def _check(host: Daemon, guest: Daemon, room_id: str, url: str, owner: DemoOwner, say: Any) -> dict[str, Any]:
    """Both results alike, both verified offline, both summaries, and no private fact on the other side."""
    from clawroomd.core.final_result import VerifyError, verify

    results, transcripts, verified, summaries, leaked = {}, {}, {}, {}, {}
    for d in (host, guest):
        with d.client() as c:
            results[d.role] = c.call("room.result", room_id=room_id, wait_s=10)
            transcripts[d.role] = c.call("room.transcript", room_id=room_id)["events"]
        files = results[d.role]["files"]
        folder = Path(files["final_result"]).parent
        try:
            ok = verify(Path(files["final_result"]).read_bytes(), (folder / "transcript.jsonl").read_bytes())
            verified[d.role] = {"ok": True, "summary": ok.summary(), "status": ok.status, "signers": ok.signers}
            verified[d.role]["short"] = (
                f"{ok.status}, {len(ok.agreed)} outcomes, {ok.events} events and {len(ok.signers)} signatures "
                f"checked, transcript.jsonl matches ({ok.transcript_lines} lines)"
            )
        except VerifyError as err:
            verified[d.role] = {"ok": False, "summary": f"FAILED at {err.where}: {err.message}"}
            verified[d.role]["short"] = verified[d.role]["summary"]
        summaries[d.role] = Path(files["summary"]).read_text("utf-8")
        other = "guest" if d.role == "host" else "host"
        leaked[other] = leaks(SECRETS[other], d.state_dir)  # the other owner's secrets, looked for here
    ra, rb = results["host"], results["guest"]
    same = {key: ra.get(key) == rb.get(key) for key in ("status", "outcomes", "unresolved", "digest", "head", "events")}
    same["transcript"] = [e["hash"] for e in transcripts["host"]] == [e["hash"] for e in transcripts["guest"]]
    agree = all(same.values())
    say("\nResults, as each daemon wrote its own:")
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
    say("\nBoth results checked offline, as `clawroom verify final_result.json --transcript transcript.jsonl` does:")
    for d in (host, guest):
        v = verified[d.role]
        said = "verified" if v["ok"] else "NOT verified"
        say(f"  daemon {d.name} ({d.role:<5}): {said}: {render.safe(v['short'])}")
    for d in (host, guest):
        name = OWNERS[d.role]["owner_name"]
        say(f"\nSummary for {name}, the {d.role}'s owner (daemon {d.name}: rooms/{room_id}/summary.md):")
        say("\n".join("  | " + render.safe(line) for line in summaries[d.role].splitlines()))
    kept_home = not any(leaked.values())
    say(
        "\nPrivate facts stayed home: neither owner's private fact is anywhere in the other daemon's state."
        if kept_home
        else f"\nA PRIVATE FACT LEAKED: {leaked}"
    )
    verified_both = all(v["ok"] for v in verified.values())
    return {
        "room_id": room_id,
        "join_url": url,
        "status": ra["status"],
        "ok": agree and verified_both and kept_home and ra["status"] == "agreement_reached",
        "agree": agree,
        "same": same,
        "heads_equal": same["head"],
        "host": ra,
        "guest": rb,
        "transcript": transcripts["host"],
        "escalations": [{"question": r["question"], "answer": r["answer"]} for r in owner.records],
        "verified": verified,
        "summaries": summaries,
        "private_facts_leaked": leaked,
    }
