"""Issue 7 item 3 with two real daemons: a guest killed while its agent's move sits in the outbox must not,
after a restart, run its agent again on the old view and have that second reply (`accept price`, written
having seen 100) accept the host's later 120. The agent is `tests/stale_agent.py`, held by gate files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.client import ApiError
from clawroomd.testing import DaemonProcess, wait_for

pytestmark = pytest.mark.slow
FAST = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.5, "send_timeout": 3.0, "guest_grace": 1.0}
AGENT = Path(__file__).with_name("stale_agent.py")



def outbox_rows(d: DaemonProcess) -> int:
    with sqlite3.connect(f"file:{d.state_dir / 'clawroomd.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def agent_runs(folder: Path) -> list[dict[str, Any]]:
    log = folder / "agent.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_guest_killed_with_a_queued_move_never_replies_twice_nor_accepts_what_it_did_not_see(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    host = DaemonProcess(tmp_path / "host", name="host", tuning=FAST).start()
    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning=FAST).start()
    try:
        created = host.call("room.create", topic="price", fields=["price"], max_turns=10)
        room = created["room_id"]
        guest.call("room.join", join_url=created["join_url"],
                   agent_command=[sys.executable, str(AGENT), str(gates)])  # fmt: skip
        (gates / "hold-2").touch()  # the agent's first answer waits until the host is gone
        host.call("room.send", room_id=room, text="100", propose={"price": "100"}, expect_seq=1)  # seq 2
        wait_for("the agent's view of seq 2", lambda: agent_runs(gates))

        host.kill()  # the host is unreachable: the agent's `accept price` (saw 100) stays queued
        (gates / "go-2").touch()
        wait_for("the agent's move in the guest's outbox", lambda: outbox_rows(guest) == 1)
        guest.kill()  # kill -9 with the move in the outbox

        guest.start()  # the host is still down: the move stays queued after the restart
        wait_for(
            "the restarted guest to decide about its agent",
            lambda: len(agent_runs(gates)) > 1 or "waits for the host" in guest.log_path.read_text(),
        )
        host.start()  # the guest redials and resubmits its queued move: seq 3, price agreed at 100
        wait_for("the host to append the queued move", lambda: host.call("room.status", room_id=room)["seq"] == 3)
        host.call("room.send", room_id=room, text="120 now", propose={"price": "120"}, expect_seq=3)  # seq 4
        wait_for("the guest to see 120", lambda: guest.call("room.status", room_id=room)["seq"] >= 4)
        (gates / "go-rerun").touch()  # releases a second run on seq 2, if the daemon started one
        wait_for("the guest's answer to 120", lambda: host.call("room.status", room_id=room)["seq"] >= 5)
        wait_for("the guest to hold it too", lambda: guest.call("room.status", room_id=room)["seq"] >= 5)

        events = [json.loads(line) for line in host.transcript(room).splitlines()]
        assert host.transcript(room) == guest.transcript(room)
        for e in events:  # every accept by the guest is of a value its agent saw, on the seq it saw it
            for m in e["body"].get("moves", []) if e["author"] == "guest" else []:
                if m["op"] == "accept":
                    saw, _, at = e["body"]["text"].removeprefix("saw ").partition(" at seq ")
                    assert (m["value"], e["seq"]) == (saw, int(at) + 1), e
        price = host.call("room.status", room_id=room)["fields"][0]
        assert price["status"] != "agreed" and price["proposals"] == {"host": "120", "guest": "100"}, price
        runs = agent_runs(gates)
        seqs = [r["seq"] for r in runs]
        assert len(seqs) == len(set(seqs)), f"the agent ran twice for one turn: {runs}"
        assert runs == [{"seq": 2, "saw": "100"}, {"seq": 4, "saw": "120"}]
        assert [e["seq"] for e in events] == list(range(6))  # the queued move landed once, nothing doubled
    finally:
        for d in (guest, host):
            d.stop()


def clawroom(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    from test_cli import cli_env

    return subprocess.run([sys.executable, "-m", "clawroomd.cli.main", "--socket", str(d.socket), *args],
                          env=cli_env(), capture_output=True, text=True, timeout=30)  # fmt: skip


Joined = tuple[DaemonProcess, DaemonProcess, str]  # host, guest, room id


@pytest.fixture
def joined(tmp_path: Path) -> Iterator[Joined]:
    """A host and a guest daemon sharing one room on the field `price` (the host moves first)."""
    host = DaemonProcess(tmp_path / "host", name="host", tuning=FAST).start()
    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning=FAST).start()
    try:
        created = host.call("room.create", topic="price", fields=["price"], max_turns=10)
        room = created["room_id"]
        guest.call("room.join", join_url=created["join_url"])
        wait_for("joined", lambda: host.call("room.status", room_id=room)["seq"] == 1)
        yield host, guest, room
    finally:
        for d in (guest, host):
            d.stop()


def test_cli_send_and_close_are_bound_to_the_seq_they_start_from(joined: Joined) -> None:
    host, guest, room = joined
    ok = clawroom(host, "send", "--room", room, "--propose", "price=100", "--expect-seq", "1")
    assert ok.returncode == 0, ok.stderr
    wait_for("the guest sees 100", lambda: guest.call("room.status", room_id=room)["seq"] == 2)
    ok = clawroom(guest, "send", "--room", room, "--accept", "price")  # bound to the seq it read: 2
    assert ok.returncode == 0 and "accept price = 100" in ok.stdout, ok.stderr
    wait_for("the host sees it", lambda: host.call("room.status", room_id=room)["seq"] == 3)
    host.call("room.send", room_id=room, text="120 now", propose={"price": "120"})
    wait_for("the guest sees 120", lambda: guest.call("room.status", room_id=room)["seq"] == 4)
    # what the guest's owner decided on when the room stood at seq 2 is refused, not applied to 120
    stale = clawroom(guest, "send", "--room", room, "--accept", "price", "--expect-seq", "2")
    assert stale.returncode == 9 and "moved on from seq 2 to 4" in stale.stderr, stale
    as_json = json.loads(clawroom(guest, "--json", "close", "--room", room, "--expect-seq", "3").stdout)
    assert as_json == {"error": "stale_state", "message": as_json["message"], "exit_code": 9}
    assert guest.call("room.status", room_id=room)["seq"] == 4
    assert host.call("room.status", room_id=room)["seq"] == 4


def test_a_queued_guest_move_holds_the_turn_until_it_lands(joined: Joined) -> None:
    host, guest, room = joined
    host.call("room.send", room_id=room, text="100", propose={"price": "100"})
    wait_for("the guest sees 100", lambda: guest.call("room.status", room_id=room)["seq"] == 2)
    host.kill()
    queued = guest.call("room.send", room_id=room, text="yes", accept=["price"])
    assert queued["queued"] is True
    # a second move on the same turn could only be refused by the host later: say so now
    with pytest.raises(ApiError) as err:
        guest.call("room.send", room_id=room, text="no, 90", propose={"price": "90"})
    assert err.value.code == "conflict" and err.value.data["queued_sid"] == queued["sid"]
    assert outbox_rows(guest) == 1
    host.start()
    wait_for("the queued move lands", lambda: guest.call("room.status", room_id=room)["seq"] == 3)
    assert host.transcript(room) == guest.transcript(room)
    last = json.loads(host.transcript(room).splitlines()[-1])
    assert last["sid"] == queued["sid"] and last["body"]["moves"] == [{"op": "accept", "field": "price",
                                                                       "value": "100"}]  # fmt: skip
    assert outbox_rows(guest) == 0
