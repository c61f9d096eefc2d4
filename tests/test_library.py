"""The `clawroom` library against two real daemons (clawroomd.testing.DaemonProcess): a whole room to
agreement_reached with the host on the blocking library and the guest on the trio library, watch resumed
from a seq, wait_turn, the daemon's error codes as exceptions, and the message when no daemon runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import clawroom
import clawroom.aio
from clawroomd.testing import DaemonProcess, daemon_pair

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    with daemon_pair(tmp_path_factory.mktemp("lib")) as pair:
        yield pair


def seqs(notes: list[dict[str, Any]]) -> list[int]:
    return [n["params"]["event"]["seq"] for n in notes if n["method"] == "room.event"]


async def test_whole_room_sync_host_trio_guest(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = daemons
    host_conn = clawroom.connect(str(a.socket))
    guest_conn = clawroom.aio.connect(str(b.socket))
    run = trio.to_thread.run_sync

    room = await run(lambda: host_conn.create(
        "Q2 API contract", ["amount_format", "hash_algorithm"], goal="Agree on Payments v3", max_turns=8,
        label="stripe-agent", turn_timeout=600,
    ))  # fmt: skip
    assert room.id.startswith("cr_") and room.join_url and room.join_url.startswith("clawroom://join/" + room.id)
    assert room.role == "host" and any(r["room_id"] == room.id for r in await run(host_conn.rooms))

    guest = await guest_conn.join(room.join_url, label="backend-agent")
    assert guest.id == room.id and guest.role == "guest"

    card = await run(lambda: room.wait_turn(timeout=30))
    assert card["your_turn"] and card["lifecycle"] == "active"
    moves = {"amount_format": "minor units", "hash_algorithm": "SHA-256"}
    sent = await run(lambda: room.send("Minor units and SHA-256.", propose=moves))
    first_move = sent["event"]["seq"]
    assert room.seq == first_move
    with pytest.raises(clawroom.NotYourTurn) as not_yours:
        await run(lambda: room.send("again"))
    assert not_yours.value.code == "not_your_turn" and not_yours.value.message

    with pytest.raises(clawroom.StaleState):  # the guest has not seen the host's move yet
        await guest.send("Fine.", accept=["amount_format"])

    card = await guest.wait_turn(timeout=30)
    assert card["your_turn"] and guest.seq == card["seq"]
    with pytest.raises(clawroom.ClawroomError) as unknown:
        await guest.send("x", propose={"no_such_field": "1"})
    assert unknown.value.code == "unknown_field"
    await guest.send("Both fine.", accept=["amount_format", "hash_algorithm"])

    # the host's object still holds the seq of its own move: a send bound to it is refused, nothing added
    with pytest.raises(clawroom.StaleState) as stale:
        await run(lambda: room.send("bound to an old state"))
    assert stale.value.code == "stale_state" and stale.value.data["expect_seq"] == first_move
    card = await run(lambda: room.wait_turn(timeout=30))
    assert card["agreed"] == 2 and card["seq"] > first_move
    await run(room.close)
    card = await guest.wait_turn(timeout=30)
    assert card["pending_close"]
    await guest.close()

    results = [await run(lambda: room.result(wait=True, timeout=30)), await guest.result(timeout=30)]
    assert results[0]["status"] == results[1]["status"] == "agreement_reached"
    assert results[0]["head"] == results[1]["head"]
    written = await guest.summary("We agreed on minor units and SHA-256.")
    assert written["room_id"] == room.id

    # watch, resumed from a seq, on both libraries: every later event once, then room.closed
    notes = await run(lambda: list(room.watch(after=first_move)))
    last = results[0]["events"] - 1
    assert seqs(notes) == list(range(first_move + 1, last + 1)) and notes[-1]["method"] == "room.closed"
    everything = await run(lambda: list(room.watch()))
    assert seqs(everything) == list(range(0, last + 1))
    guest_notes = [n async for n in guest.watch(after=first_move)]
    assert seqs(guest_notes) == seqs(notes) and guest_notes[-1]["method"] == "room.closed"
    async for note in guest.watch():  # breaking out of the loop leaves nothing open
        assert note["method"] == "room.event"
        break

    with pytest.raises(clawroom.RoomClosed):
        await run(lambda: room.send("late"))
    with pytest.raises(clawroom.RoomClosed):
        await guest.wait_turn(timeout=5)


def test_wait_turn_times_out_and_errors_carry_codes(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, _ = daemons
    conn = clawroom.connect(str(a.socket))
    room = conn.create("nobody joins", ["x"])
    with pytest.raises(TimeoutError):
        room.wait_turn(timeout=0.5)  # the guest never joined: not the host's turn yet
    with pytest.raises(clawroom.UnknownRoom) as unknown:
        conn.room("cr_0123456789abcdef")
    assert unknown.value.code == "unknown_room" and isinstance(unknown.value, clawroom.ClawroomError)
    with pytest.raises(clawroom.BadValue):
        conn.create("t", ["x"], turn_timeout=-1)
    room.cancel("test over")


async def test_trio_errors_carry_codes(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, _ = daemons
    with pytest.raises(clawroom.UnknownRoom):
        await clawroom.aio.connect(str(a.socket)).room("cr_0123456789abcdef")


def test_no_daemon_says_how_to_start_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWROOM_SOCKET", str(tmp_path / "none.sock"))  # the module-level default follows it
    with pytest.raises(clawroom.DaemonNotRunning) as err:
        clawroom.create("t", ["x"])
    assert "clawroomd &" in str(err.value) and "clawroom demo" in str(err.value)
    assert str(tmp_path / "none.sock") in str(err.value) and err.value.code == "daemon_not_running"


async def test_no_daemon_trio(tmp_path: Path) -> None:
    with pytest.raises(clawroom.DaemonNotRunning, match="clawroomd &"):
        await clawroom.aio.connect(str(tmp_path / "none.sock")).rooms()


def test_import_clawroom_does_not_import_trio() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys, clawroom; clawroom.connect(); assert 'trio' not in sys.modules, 'trio imported'"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
