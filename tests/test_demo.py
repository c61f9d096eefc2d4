"""`clawroom demo`: the page's story end to end (two owner contexts, one escalation answered by the demo's
owner, both summaries, both results verified, private facts kept home), nothing left behind; and the
demo negotiator's handling of its owner's limits."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.cli.demo_story import OWNERS, SECRETS
from clawroomd.demo.negotiator import IDEM_GRACE, IDEM_STRICT, decide

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "CLAWROOM_SOCKET", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TMPDIR"] = str(tmp)  # the demo's private folder goes here, so the test can see it is gone
    return env


def _demo(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clawroomd.cli.main", "demo", *args], env=_env(tmp),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short TMPDIR for the demo: its sockets' paths must fit a Unix socket address (107 bytes), which
    pytest's own tmp_path can exceed."""
    path = Path(tempfile.mkdtemp(prefix="crdemo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.mark.slow
def test_demo_tells_the_story_and_leaves_nothing(short_tmp: Path) -> None:
    started = time.monotonic()
    proc = _demo(short_tmp)
    wall = time.monotonic() - started
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout
    assert "\x1b" not in out  # not a terminal: the plain transcript, no live card
    for piece in (
        "priya (Payment infrastructure lead)",
        "may agree alone within: idempotency_policy<=30",
        "marco (Backend platform engineer)",
        "stripe-agent is consulting its owner.",
        "Escalation: stripe-agent asked its owner (q_",
        "past your limit idempotency_policy<=30",
        "answered automatically by the demo's owner: approve",
        "stripe-agent is back from consulting its owner.",
        "(our owner approved it)",
        "Room closed. Result: agreement_reached.",
        "Both daemons agree",
        "daemon A (host ): verified: agreement_reached, 4 outcomes",
        "daemon B (guest): verified: agreement_reached, 4 outcomes",
        "Summary for priya, the host's owner",
        "Summary for marco, the guest's owner",
        "Private facts stayed home",
    ):
        assert piece in out, piece  # fmt: skip
    summaries = out.split("Summary for priya")[1]
    assert summaries.count("| # Result: Negotiate API Contract for Payments v3") == 2
    assert "past your limit idempotency_policy<=30. May I agree?: approved: Approved: 90 days" in summaries
    assert "| - none" in summaries.split("Summary for marco")[1]  # the guest's owner was asked nothing
    assert wall < 30, wall
    # nothing left: no daemon, no agent, no folder
    assert list(short_tmp.iterdir()) == []
    assert _processes_mentioning(str(short_tmp)) == []


@pytest.mark.slow
def test_demo_keeps_each_private_fact_on_its_own_daemon(short_tmp: Path) -> None:
    proc = _demo(short_tmp, "--json", "--keep")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["ok"] and report["status"] == "agreement_reached" and report["agree"]
    assert [v["ok"] for v in report["verified"].values()] == [True, True]
    [escalation] = report["escalations"]
    assert escalation["answer"]["approved"] and escalation["question"]["field"] == "idempotency_policy"
    assert escalation["question"]["value"] == IDEM_GRACE
    assert report["private_facts_leaked"] == {"host": [], "guest": []}
    assert "Questions to you" in report["summaries"]["host"] and "approved" in report["summaries"]["host"]

    kept = {role: Path(path) for role, path in report["kept"].items()}
    host_secret = OWNERS["host"]["private_facts"][0]
    for role, other in (("host", "guest"), ("guest", "host")):
        own_fact = OWNERS[role]["private_facts"][0].encode()
        # the check is real: each fact is on its own daemon (its profile and the room's copy) ...
        assert any(own_fact in p.read_bytes() for p in kept[role].rglob("*.json") if p.is_file())
        # ... and nowhere on the other one: database, transcript, result, summary
        for path in kept[other].rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert own_fact not in data, path
                assert not [s for s in SECRETS[role] if s.encode() in data], path
    transcript = (kept["guest"] / "rooms" / report["room_id"] / "transcript.jsonl").read_text()
    events = [json.loads(line) for line in transcript.splitlines()]
    assert any(e["kind"] == "consult_started" and e["author"] == "host" for e in events)
    assert "May I agree" not in transcript and "Approved: 90 days" not in transcript  # the question stays home
    assert host_secret not in transcript


@pytest.mark.slow
def test_demo_shows_the_live_card_on_a_terminal(short_tmp: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    sock, tmp = str(short_tmp / "tmux.sock"), short_tmp

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", sock, *args], check=True, capture_output=True, text=True,
                              env=_env(tmp), timeout=10).stdout  # fmt: skip

    tmux("new-session", "-d", "-x", "100", "-y", "40", "-c", str(ROOT), "bash --norc --noprofile")
    try:
        tmux("send-keys", f"PS1='$ '; {sys.executable} -m clawroomd.cli.main demo; echo EXIT=$?", "Enter")
        seen: set[str] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p")
            if screen.startswith("Live Session"):
                seen.add("card")
            if "Your agent asks you: The other side wants" in screen:
                seen.add("question")
            if re.search(r"^EXIT=\d+$", screen, re.M):
                break
            time.sleep(0.2)
        history = tmux("capture-pane", "-p", "-S", "-400")
        assert re.search(r"^EXIT=0$", history, re.M), history[-3000:]
        assert seen == {"card", "question"}, seen  # the card, with the owner's question on it while it waited
        assert "Escalation: stripe-agent asked its owner" in history and "Private facts stayed home" in history
        assert "CLOSED" in history  # the final card stays on the normal screen
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=10)


# ---------------------------------------------------------------------------------------- the negotiator
def _doc(answers: list[dict[str, Any]]) -> dict[str, Any]:
    standing = {"host": IDEM_STRICT, "guest": IDEM_GRACE}
    fields = [{"name": "idempotency_policy", "status": "proposed", "proposals": standing}]
    room = {"fields": fields, "turn": "host", "turns": 2, "max_turns": 20, "pending_close": None, "consulting": []}
    transcript = [
        {
            "kind": "message",
            "author": "host",
            "body": {"moves": [{"op": "propose", "field": "idempotency_policy", "value": IDEM_STRICT}]},
        }
    ]
    return {"you": "host", "room": room, "transcript": transcript, "owner": OWNERS["host"], "answers": answers}


def test_negotiator_asks_its_owner_past_a_limit() -> None:
    asked = decide(_doc([]))
    assert asked["action"] == "ask_owner" and asked["field"] == "idempotency_policy" and asked["value"] == IDEM_GRACE
    assert "idempotency_policy<=30" in asked["question"] and asked["options"] == ["approve", "reject"]
    doc = _doc([])
    doc["room"]["consulting"] = ["host"]
    assert decide(doc) == {"action": "wait"}  # the question is out: nothing until the owner answers

    yes = {"question_id": "q_1", "field": "idempotency_policy", "value": IDEM_GRACE, "approved": True}
    accepted = decide(_doc([yes]))
    assert accepted["moves"] == [{"op": "accept", "field": "idempotency_policy", "value": IDEM_GRACE,
                                  "refs": ["answer:q_1"]}]  # fmt: skip
    assert "our owner approved it" in accepted["text"]

    no = {**yes, "approved": False}
    refused = decide(_doc([no]))
    assert refused["moves"] == [{"op": "reject", "field": "idempotency_policy"}]  # nothing else it can live with

    unbound = _doc([])
    unbound["owner"] = {**OWNERS["host"], "limits": []}
    assert decide(unbound)["moves"][0] == {"op": "accept", "field": "idempotency_policy", "value": IDEM_GRACE,
                                           "refs": []}  # fmt: skip
