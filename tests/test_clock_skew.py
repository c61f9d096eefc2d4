"""Honest daemons whose wall clocks disagree (SPEC §9): deadlines must not care. Real daemons in subprocesses;
the skewed one loads tests/skewed_clock/sitecustomize.py, which shifts time.time / time.time_ns only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.client import ApiError
from clawroomd.testing import DaemonProcess, wait_for

pytestmark = pytest.mark.slow
FAST = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.5, "send_timeout": 5.0, "guest_grace": 1.0}
SKEWED = str(Path(__file__).resolve().parent / "skewed_clock")
FIELDS = ["price"]


def daemon(folder: Path, name: str, skew_ms: int) -> DaemonProcess:
    env = {"PYTHONPATH": SKEWED, "CLAWROOM_TEST_CLOCK_SKEW_MS": str(skew_ms)} if skew_ms else {}
    return DaemonProcess(folder / name, name=name, tuning=FAST, env=env).start()


@pytest.fixture
def make_pair(tmp_path: Path) -> Iterator[Any]:
    started: list[DaemonProcess] = []

    def make(host_skew_ms: int = 0, guest_skew_ms: int = 0) -> tuple[DaemonProcess, DaemonProcess]:
        host = daemon(tmp_path, "host", host_skew_ms)
        started.append(host)
        guest = daemon(tmp_path, "guest", guest_skew_ms)
        started.append(guest)
        return host, guest

    yield make
    for d in reversed(started):
        d.stop()


def status(d: DaemonProcess, room_id: str) -> dict[str, Any]:
    return d.call("room.status", room_id=room_id)



def test_the_skew_hook_works(make_pair):
    host, guest = make_pair(guest_skew_ms=-45_000)
    created = host.call("room.create", topic="t", fields=FIELDS)
    guest.call("room.join", join_url=created["join_url"])
    events = host.call("room.transcript", room_id=created["room_id"])["events"]
    assert 40_000 < events[0]["ts"] - events[1]["ts"] < 50_000  # the guest dated `joined` 45 s "earlier"


@pytest.mark.parametrize(
    ("host_skew_ms", "guest_skew_ms"), [(0, -45_000), (-45_000, 0)], ids=["guest-45s-slow", "host-45s-slow"]
)
def test_a_skewed_clock_on_either_side_leaves_the_turn_deadline_alone(make_pair, host_skew_ms, guest_skew_ms):
    """The issue's case: clocks 45 s apart, turn timeout 6 s. The room must neither close at once (guest slow:
    its events look 45 s old) nor 45 s late (host slow: they look 45 s ahead); the host's turn deadline runs
    from when the host received the guest's move."""
    turn_s = 6
    host, guest = make_pair(host_skew_ms, guest_skew_ms)
    created = host.call("room.create", topic="t", fields=FIELDS, turn_timeout_s=turn_s)
    room_id = created["room_id"]
    guest.call("room.join", join_url=created["join_url"])
    host.call("room.send", room_id=room_id, text="your move")
    wait_for("the guest's turn", lambda: status(guest, room_id)["your_turn"])
    sent = time.monotonic()
    guest.call("room.send", room_id=room_id, text="my move")
    time.sleep(1.5)
    card = status(host, room_id)
    assert card["phase"] == "active" and card["turns"] == 2, card.get("result")
    result = wait_for("the turn timeout", lambda: status(host, room_id)["result"], timeout=turn_s + 20)
    elapsed = time.monotonic() - sent
    assert result["status"] == "timeout" and "the host did not move" in result["reason"]
    assert elapsed >= turn_s, f"closed after {elapsed:.1f} s, before the turn timeout"


def test_the_guest_local_deadline_ignores_the_skew(make_pair):
    """Guest clock 4 min fast (within the bound, so the host accepts its events), room deadline 6 s, host gone:
    the guest ends the room on its own side about 6 s + grace after it heard from the host, not at once."""
    host, guest = make_pair(guest_skew_ms=4 * 60_000)
    created = host.call("room.create", topic="t", fields=FIELDS, deadline_s=6)
    room_id = created["room_id"]
    guest.call("room.join", join_url=created["join_url"])
    joined = time.monotonic()
    host.kill()
    time.sleep(2)
    assert status(guest, room_id)["result"] is None
    result = wait_for("the guest's local deadline", lambda: status(guest, room_id)["result"], timeout=30)
    assert result["status"] == "timeout" and result.get("local") is True
    assert time.monotonic() - joined >= 5


def test_a_clock_beyond_the_bound_gets_a_clear_refusal(make_pair):
    host, guest = make_pair(guest_skew_ms=6 * 60_000)
    created = host.call("room.create", topic="t", fields=FIELDS)
    with pytest.raises(ApiError) as err:
        guest.call("room.join", join_url=created["join_url"])
    assert err.value.data.get("protocol_code") == "bad_timestamp"
    assert "ahead of our clock" in err.value.message and "clock is wrong" in err.value.message
    assert status(host, created["room_id"])["phase"] == "invited"  # nothing was appended
