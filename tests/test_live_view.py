"""`clawroom status --watch`, the live card (clawroomd/cli/live_card.py, live_view.py).

The card as a pure function (fits, escapes what the peer wrote, keeps the peer's context private), then
the real thing against two real daemons: in a real terminal (tmux: 80 columns, an update after a send,
a resize to 60 columns, a clean screen after Ctrl-C) and through a pipe (plain cards, no escape codes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.cli.live_card import ago, card_lines, fit, width_of
from clawroomd.testing import DaemonProcess, daemon_pair

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202eevil"
OWNER = {
    "owner_name": "alice",
    "role": "Payment infrastructure lead",
    "goals": ["Align on Payments v3 contract"],
    "constraints": ["Must keep backward compat for 90d"],
    "priorities": ["Webhook reliability over latency"],
    "private_facts": ["Our ceiling is 48,500 EUR"],
}


# ------------------------------------------------------------------------------------------- pure card
def _view(**over: Any) -> dict[str, Any]:
    view = {
        "room_id": "cr_0123456789abcdef",
        "role": "host",
        "topic": "Negotiate API Contract",
        "goal": "Agree",
        "lifecycle": "active",
        "participants": {
            "host": {"peer_id": "AAAAAAA-BBBBBBB-CCCCCCC", "label": "stripe-agent"},
            "guest": {"peer_id": "DDDDDDD-EEEEEEE-FFFFFFF", "label": "backend-agent"},
        },
        "awaiting": ["guest"],
        "your_turn": False,
        "turns": 1,
        "max_turns": 20,
        "messages": 1,
        "seq": 3,
        "duration_ms": 12_400,
        "fields": [{"name": "amount_format", "status": "agreed"}, {"name": "hash_algorithm", "status": "open"}],
        "agreed": 1,
        "required": 2,
        "consulting": [],
        "peer_connected": True,
        "result": None,
        "owner": {k: v for k, v in OWNER.items() if k != "private_facts"},
    }
    return {**view, **over}


def _events(t0: int, *texts: tuple[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"seq": 0, "kind": "room_created", "author": "host", "ts": t0, "body": {"topic": "T", "max_turns": 20}},
        {"seq": 1, "kind": "joined", "author": "guest", "ts": t0 + 100, "body": {"label": "backend-agent"}},
    ]
    for i, (author, text) in enumerate(texts):
        ts = t0 + 1000 * (i + 2)
        events.append({"seq": 2 + i, "kind": "message", "author": author, "ts": ts, "body": {"text": text}})
    return events


def test_card_shows_the_seed_card() -> None:
    t0 = 1_700_000_000_000
    events = _events(t0, ("host", "Proposing fixed 30s retry."), ("guest", "Accepted idempotency with grace period."))
    lines = card_lines(_view(), events, now_ms=t0 + 14_000)
    text = "\n".join(lines)
    assert lines[0].startswith("Live Session cr_0123456789abcdef") and lines[0].endswith("ACTIVE")
    for piece in (
        "Room: Negotiate API Contract",
        "turn 1/20",
        "Messages 1",
        "Duration 12.4s",
        "Outcomes 1/2",
        "stripe-agent · Host (you)",
        "backend-agent · Guest",
        "Role: Payment infrastructure lead",
        "Goal: Align on Payments v3 contract",
        "Constraint: Must keep backward compat for 90d",
        "Priority: Webhook reliability over latency",
        "private to the guest's owner",
        "Current Stance: Proposing fixed 30s retry.",
        "Current Stance: Accepted idempotency with grace period.",
        "Room Transcript · 4 events",
    ):
        assert piece in text, piece  # fmt: skip
    assert "48,500" not in text  # no fact is on the card, private or not
    assert lines[-1].split() == ["11s", "ago", "backend-agent", "Accepted", "idempotency", "with", "grace", "period."]


def test_card_fits_the_terminal_and_escapes_the_peer() -> None:
    t0 = 1_700_000_000_000
    long = "x" * 300
    view = _view(topic="T" + HOSTILE, goal=long)
    events = _events(t0, *[("guest" if i % 2 else "host", f"{HOSTILE} {i} {long}") for i in range(30)])
    for width, height in ((80, 30), (60, 20), (40, 12)):
        lines = card_lines(view, events, now_ms=t0 + 40_000, width=width, height=height, footer="Ctrl-C: stop")
        assert len(lines) <= height and all(width_of(line) < width for line in lines), (width, height)
        assert not any("\x1b" in line or "\x07" in line or "\u202e" in line for line in lines)
        assert "Room Transcript" in "\n".join(lines)
        assert sum("ago" in line for line in lines) >= (3 if height >= 20 else 1)  # details give way first
        assert lines[0].endswith("ACTIVE")
    plain = "\n".join(card_lines(view, events, now_ms=t0))
    assert "\x1b" not in plain and "\\x1b[2J" in plain and "\\u202e" in plain


def test_card_parts() -> None:
    assert [ago(ms) for ms in (0, 999, 12_000, 125_000, 7_300_000, 90_000_000)] == [
        "now", "now", "12s ago", "2m ago", "2h ago", "1d ago"]  # fmt: skip
    assert fit("abcdef", 4) == "abc…" and fit("abc", 4) == "abc" and width_of(fit("日本語テキスト", 6)) <= 6
    waiting = card_lines(_view(lifecycle="invited", participants={"host": {"label": "a"}, "guest": {}}), [], now_ms=0)
    assert any("not joined yet" in line for line in waiting)
    asked = card_lines(
        _view(consulting=["host"]), [], now_ms=0, question={"question": "Grant 90 days?", "options": ["yes", "no"]}
    )
    text = "\n".join(asked)
    assert "Your agent asks you: Grant 90 days? [yes / no]" in text and "clawroom answer --room" in text
    assert "consulting its owner" in text


# ------------------------------------------------------------------------------------- real daemons
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "CLAWROOM_SOCKET", "NOTIFY_SOCKET")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    with daemon_pair(tmp_path_factory.mktemp("live")) as (a, b):
        a.call("context.write", fields=OWNER)
        yield a, b


def _room(a: DaemonProcess, b: DaemonProcess) -> str:
    """A room in progress: created on a (the host), joined from b, one message from the host."""
    view = a.call(
        "room.create",
        topic="Negotiate API Contract for Payments v3",
        goal="Agree on Payments v3",
        fields=["amount_format", "idempotency_policy", "webhook_retry_policy", "hash_algorithm"],
        label="stripe-agent",
    )
    b.call("room.join", join_url=view["join_url"], label="backend-agent", timeout_s=20)
    a.call("room.send", room_id=view["room_id"], text="Proposing v3: amounts in minor units.",
           propose={"amount_format": "minor units"})  # fmt: skip
    return str(view["room_id"])


def _wait(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_live_card_in_a_real_terminal(daemons: tuple[DaemonProcess, DaemonProcess], tmp_path: Path) -> None:
    """tmux is the terminal: the card appears and fits 80 columns, follows a send, survives a resize to
    60 columns, moves by itself every second, and Ctrl-C leaves the shell's screen as it was (exit 130)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    a, b = daemons
    room = _room(a, b)
    sock = str(tmp_path / "tmux.sock")  # a private tmux server: never the user's

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-S", sock, *args], check=True, capture_output=True, text=True,
                              env=_env(), timeout=10).stdout  # fmt: skip

    def screen() -> list[str]:
        return tmux("capture-pane", "-p").splitlines()

    tmux("new-session", "-d", "-x", "80", "-y", "30", "-c", str(ROOT), "bash --norc --noprofile")
    try:
        tmux("send-keys", "PS1='$ '; clear", "Enter")
        tmux("send-keys", f"echo before; {sys.executable} -m clawroomd.cli.main --socket {a.socket} status "
                          f"--watch --room {room}; echo EXIT=$?", "Enter")  # fmt: skip
        first = _wait("the card", lambda: (s := screen()) and s[0].startswith("Live Session") and s)
        text = "\n".join(first)
        assert first[0].rstrip().endswith("ACTIVE") and all(len(line) <= 80 for line in first)
        for piece in (
            "Room: Negotiate API Contract",
            "turn 1/20",
            "Outcomes 0/4",
            "Role: Payment infrastructure lead",
            "private to the guest's owner",
            "Current Stance: Proposing v3: amounts in minor units.",
            "Room Transcript · 3 events",
            "stripe-agent  Proposing v3",
            "Ctrl-C: stop watching",
        ):
            assert piece in text, (piece, text)  # fmt: skip
        assert "before" not in text and "EXIT=" not in text  # the alternate screen

        b.call("room.send", room_id=room, text=f"Minor units accepted. {HOSTILE}", accept=["amount_format"])
        after = "\n".join(_wait("the update", lambda: (s := screen()) and "Outcomes 1/4" in "\n".join(s) and s))
        assert "Current Stance: Minor units accepted. \\x1b[2J\\x1b]0;owned\\x07\\u202eevil" in after, after
        assert "Current Stance: Minor units accepted." in after and "Room Transcript · 4 events" in after

        tmux("resize-window", "-x", "60", "-y", "20")
        narrow = _wait(
            "the redraw at 60 columns",
            lambda: (s := screen()) and s[0].startswith("Live Session") and s[0].rstrip().endswith("ACTIVE") and s,
        )
        assert all(len(line.rstrip()) <= 59 for line in narrow) and len(narrow) <= 20
        assert "Live Session" in narrow[0] and any("Minor units accepted" in line for line in narrow)

        duration = next(line for line in narrow if "Duration" in line)
        _wait("a redraw with no event", lambda: next(ln for ln in screen() if "Duration" in ln) != duration, 5)

        tmux("send-keys", "C-c")
        end = "\n".join(_wait("the shell", lambda: (s := screen()) and "EXIT=130" in "\n".join(s) and s))
        assert "Live Session" not in end and "Room Transcript" not in end  # the shell's screen, as it was
        assert "before" in end and "clawroom: interrupted" in end
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.slow
def test_live_card_through_a_pipe(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    """Not a terminal: one plain card per change, no escape code at all, exit 0 when the room closes."""
    a, b = daemons
    room = _room(a, b)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(a.socket), "status", "--watch", "--room", room],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
    )  # fmt: skip
    try:
        time.sleep(0.5)  # the first card is out before the peer moves (the watch sees each change)
        b.call("room.send", room_id=room, text=f"Counter. {HOSTILE}", propose={"hash_algorithm": "SHA-256"})
        _wait("the host's turn", lambda: a.call("room.status", room_id=room)["your_turn"])
        b.call("room.cancel", room_id=room, reason="test over")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    text = out.decode()
    assert b"\x1b" not in out and b"\x07" not in out and "\u202e" not in text
    cards = text.split("Live Session ")[1:]
    assert len(cards) >= 3, text  # the start, the guest's message, the close
    assert "ACTIVE" in cards[0].splitlines()[0] and "CLOSED" in cards[-1].splitlines()[0]
    assert "Current Stance: Counter. \\x1b[2J\\x1b]0;owned\\x07\\u202eevil" in text
    assert "Result: cancelled" in cards[-1] and "Room closed. Result: cancelled." in cards[-1]
