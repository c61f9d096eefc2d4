"""Two real clawroomd processes on 127.0.0.1: whole rooms over the raw local API, errors, crashes, timeouts."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clawroomd.client import ApiError, Client
from clawroomd.testing import DaemonProcess, wait_for

pytestmark = pytest.mark.slow
FAST = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.5, "send_timeout": 5.0, "guest_grace": 1.0}
FIELDS = ["amount_format", "hash_algorithm"]



@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    host = DaemonProcess(tmp_path / "host", name="host", tuning=FAST).start()
    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning=FAST).start()
    yield host, guest
    for d in (host, guest):
        d.stop()


def status(d: DaemonProcess, room_id: str) -> dict[str, Any]:
    return d.call("room.status", room_id=room_id)


def turn(d: DaemonProcess, room_id: str) -> dict[str, Any]:
    return wait_for(f"{d.name}'s turn", lambda: (s := status(d, room_id))["your_turn"] and s)


def open_room(host: DaemonProcess, guest: DaemonProcess, **kw: Any) -> str:
    created = host.call("room.create", topic="Q2 API contract", goal="Agree on Payments v3", fields=FIELDS,
                        max_turns=kw.pop("max_turns", 6), **kw)
    assert created["join_url"].startswith("clawroom://join/" + created["room_id"])
    joined = guest.call("room.join", join_url=created["join_url"], label="backend-agent")
    assert joined["room_id"] == created["room_id"] and joined["lifecycle"] == "active"
    return created["room_id"]


def finish_with_agreement(host: DaemonProcess, guest: DaemonProcess, room_id: str) -> None:
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="Minor units; SHA-256 over raw JSON.",
              propose={"amount_format": "minor units", "hash_algorithm": "SHA-256"})
    turn(guest, room_id)
    guest.call("room.send", room_id=room_id, text="Both accepted.", accept=FIELDS)
    turn(host, room_id)
    host.call("room.close", room_id=room_id)
    turn(guest, room_id)
    guest.call("room.close", room_id=room_id)
    for d in (host, guest):
        wait_for(f"{d.name} closed", lambda d=d: status(d, room_id)["phase"] == "closed")


def test_full_room_over_the_raw_socket(pair):
    host, guest = pair
    room_id = open_room(host, guest)
    # one request through a bare socket, exactly as the README's socat example sends it
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(host.socket))
        s.sendall(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "room.status",
                             "params": {"room_id": room_id}}).encode() + b"\n")
        reply = json.loads(s.makefile().readline())
    assert reply["id"] == 7 and reply["result"]["participants"]["guest"]["label"] == "backend-agent"
    finish_with_agreement(host, guest, room_id)
    a, b = host.call("room.result", room_id=room_id), guest.call("room.result", room_id=room_id)
    assert a["status"] == b["status"] == "agreement_reached"
    assert a["outcomes"] == b["outcomes"] == {"amount_format": "minor units", "hash_algorithm": "SHA-256"}
    assert a["head"] == b["head"]
    assert host.transcript(room_id) == guest.transcript(room_id)
    assert len(host.transcript(room_id).splitlines()) == 7


def test_watch_streams_events_and_your_turn(pair):
    host, guest = pair
    room_id = open_room(host, guest)
    with Client(guest.socket, timeout=10) as watcher:
        watcher.call("room.watch", room_id=room_id, after=-1)
        turn(host, room_id)
        host.call("room.send", room_id=room_id, text="hello", propose={"amount_format": "cents"})
        kinds, woke = [], False
        for note in watcher.notifications(timeout=10):
            if note["method"] == "room.event":
                kinds.append(note["params"]["event"]["kind"])
            if note["method"] == "room.your_turn":
                woke = True
                break
    assert kinds == ["room_created", "joined", "message"] and woke


def error_code(fn: Callable[[], Any]) -> str:
    with pytest.raises(ApiError) as err:
        fn()
    return err.value.code


def test_refusals_leave_the_room_unchanged(pair):
    host, guest = pair
    room_id = open_room(host, guest, max_turns=2)
    before = status(guest, room_id)["head"]
    assert error_code(lambda: guest.call("room.send", room_id=room_id, text="me first")) == "not_your_turn"
    assert error_code(lambda: host.call("room.send", room_id="cr_0000000000000000", text="x")) == "unknown_room"
    assert error_code(lambda: host.call("room.send", room_id=room_id, text="x",
                                        propose={"colour": "red"})) == "unknown_field"
    assert error_code(lambda: host.call("room.send", room_id=room_id, text="x" * 9000)) == "bad_value"
    assert error_code(lambda: host.call("room.create", topic="t")) == "invalid_params"
    assert error_code(lambda: guest.call("room.join", join_url="https://example.com/join/x")) == "bad_join_url"
    assert status(guest, room_id)["head"] == before == status(host, room_id)["head"]
    with socket.socket(socket.AF_UNIX) as s:  # malformed JSON, then a good call on the same connection
        s.connect(str(host.socket))
        f = s.makefile("rwb")
        f.write(b"{not json\n" + json.dumps({"jsonrpc": "2.0", "id": 2, "method": "room.list"}).encode() + b"\n")
        f.flush()
        assert json.loads(f.readline())["error"]["code"] == -32700
        assert json.loads(f.readline())["result"]["rooms"][0]["room_id"] == room_id
    with socket.socket(socket.AF_UNIX) as s:  # a request over the size limit closes only that connection
        s.connect(str(host.socket))
        s.sendall(b'{"jsonrpc":"2.0","id":3,"method":"room.list","params":{"x":"' + b"a" * (2 << 20) + b'"}}\n')
        reply = json.loads(s.makefile("rb").readline())
        assert reply["error"]["data"]["error"] == "limit_exceeded"
    # over the turn limit: two turns without agreement close the room; then it is closed for everyone
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="one")
    turn(guest, room_id)
    guest.call("room.send", room_id=room_id, text="two")
    wait_for("turn limit close", lambda: status(host, room_id)["phase"] == "closed")
    assert host.call("room.result", room_id=room_id)["status"] == "turn_limit_reached"
    assert error_code(lambda: host.call("room.send", room_id=room_id, text="three")) == "room_closed"
    wait_for("guest sees the close", lambda: status(guest, room_id)["phase"] == "closed")
    assert error_code(lambda: guest.call("room.send", room_id=room_id, text="three")) == "room_closed"
    assert host.transcript(room_id) == guest.transcript(room_id)


def test_a_used_invite_cannot_be_used_again(pair, tmp_path):
    host, guest = pair
    created = host.call("room.create", topic="t", fields=FIELDS)
    guest.call("room.join", join_url=created["join_url"])
    third = DaemonProcess(tmp_path / "third", name="third", tuning=FAST).start()
    try:
        assert error_code(lambda: third.call("room.join", join_url=created["join_url"])) == "invite_rejected"
        tampered = created["join_url"][:-4] + ("AAAA" if not created["join_url"].endswith("AAAA") else "BBBB")
        assert error_code(lambda: third.call("room.join", join_url=tampered)) == "invite_rejected"
    finally:
        third.stop()
    assert status(host, created["room_id"])["participants"]["guest"]["peer_id"] == guest.call("daemon.info")["peer_id"]


@pytest.mark.parametrize("victim", ["guest", "host"])
def test_kill_9_mid_room_then_restart_finishes_with_identical_transcripts(pair, victim):
    host, guest = pair
    room_id = open_room(host, guest)
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="first offer", propose={"amount_format": "minor units"})
    turn(guest, room_id)
    guest.call("room.send", room_id=room_id, text="counter", propose={"hash_algorithm": "SHA-256"},
               accept=["amount_format"])
    dead = host if victim == "host" else guest
    alive = guest if victim == "host" else host
    dead.kill()
    if victim == "guest":  # the host goes on alone: its move is committed and waits for the guest
        turn(host, room_id)
        host.call("room.send", room_id=room_id, text="agreed", accept=["hash_algorithm"])
    else:  # the guest redials with backoff while the host is down (see the outbox test for a move made then)
        wait_for("guest notices the host is gone", lambda: not status(guest, room_id)["peer_connected"])
    dead.start()
    if victim == "host":
        turn(host, room_id)
        host.call("room.send", room_id=room_id, text="agreed", accept=["hash_algorithm"])
    wait_for("both sides see all fields agreed",
             lambda: status(alive, room_id)["agreed"] == 2 and status(dead, room_id)["agreed"] == 2)
    host.call("room.close", room_id=room_id)
    turn(guest, room_id)
    guest.call("room.close", room_id=room_id)
    for d in (host, guest):
        wait_for(f"{d.name} closed", lambda d=d: status(d, room_id)["phase"] == "closed")
    assert host.call("room.result", room_id=room_id)["status"] == "agreement_reached"
    lines = host.transcript(room_id).splitlines()
    assert host.transcript(room_id) == guest.transcript(room_id)
    assert [json.loads(line)["seq"] for line in lines] == list(range(len(lines)))  # nothing lost or doubled
    assert len(lines) == 8


def test_guest_move_sent_while_host_is_down_is_delivered_once_after_restart(pair):
    host, guest = pair
    room_id = open_room(host, guest)
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="offer", propose={"amount_format": "minor units"})
    turn(guest, room_id)
    host.kill()
    queued = guest.call("room.send", room_id=room_id, text="accepted while you were away", accept=["amount_format"])
    assert queued.get("queued") is True
    host.start()
    wait_for("host has the guest's move", lambda: status(host, room_id)["agreed"] == 1)
    wait_for("guest has it too", lambda: status(guest, room_id)["agreed"] == 1)
    assert status(host, room_id)["turns"] == 2
    assert host.transcript(room_id) == guest.transcript(room_id)


def test_vanished_guest_ends_the_room_with_timeout(pair):
    host, guest = pair
    room_id = open_room(host, guest, turn_timeout_s=1.5)
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="your move")
    guest.kill()
    wait_for("timeout", lambda: status(host, room_id)["phase"] == "closed", timeout=10)
    result = host.call("room.result", room_id=room_id)
    assert result["status"] == "timeout" and "guest" in result["reason"]


def test_vanished_host_ends_the_room_locally_at_its_deadline(pair):
    host, guest = pair
    room_id = open_room(host, guest, deadline_s=2)
    host.kill()
    wait_for("local timeout", lambda: status(guest, room_id)["lifecycle"] == "error", timeout=10)
    result = guest.call("room.result", room_id=room_id)
    assert result["status"] == "timeout" and result["local"] is True


def test_a_retried_send_with_the_same_sid_returns_the_original(pair):
    host, guest = pair
    room_id = open_room(host, guest)
    turn(host, room_id)
    host.call("room.send", room_id=room_id, text="offer", propose={"amount_format": "cents"})
    turn(guest, room_id)
    first = guest.call("room.send", room_id=room_id, text="yes", accept=["amount_format"], sid="agent-42")
    again = guest.call("room.send", room_id=room_id, text="yes", accept=["amount_format"], sid="agent-42")
    assert again["duplicate"] is True and again["event"]["hash"] == first["event"]["hash"]
    assert status(guest, room_id)["turns"] == 2
