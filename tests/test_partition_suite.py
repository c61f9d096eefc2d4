"""Partition suite: a host and a guest daemon in two network namespaces joined by one link
(clawroomd.testing.netns: made and removed by each test, also when it fails; skipped with the reason
where namespaces cannot be made). Rooms are negotiated by the demo negotiator on both sides.

- The link is cut (set down) for longer than the keepalive gives a silent peer: both sides declare the
  link dead; while it is down the host's agents go on and a guest's move is queued; restored, every room
  resumes and ends agreed, nothing lost or doubled.
- A partition longer than the room deadline: the host ends the room as `timeout` by itself, the guest ends
  it as `timeout` locally once the deadline and its grace have passed; after the link returns both still
  say `timeout`, and the guest receives the host's signed close.
- 10% packet loss and 50 ms +- 20 ms delay each way (tc netem, or a userspace forwarder on kernels
  without netem: see the netns module): every room ends agreed and consistent.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from negotiating_rooms import EVENTS_PER_ROOM, open_rooms, open_rows, progress

from clawroomd.core.final_result import verify
from clawroomd.testing import DaemonProcess, wait_for
from clawroomd.testing.consistency import database_problems, room_problems
from clawroomd.testing.netns import NetPair, netns_pair, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(why := unavailable()), reason=why or "")]
KEEPALIVE = {"keepalive_interval": 0.25, "dead_after": 1.0, "max_backoff": 0.5, "send_timeout": 3.0, "guest_grace": 1.0}
ROOMS = 8


class Pair:
    def __init__(self, net: NetPair, root: Path, tuning: dict[str, Any]) -> None:
        self.net = net
        self.host, self.guest = (
            DaemonProcess(root / name, name=name, tuning=tuning, netns=ns.name, listen_host=ns.addr)
            for name, ns in (("host", net.a), ("guest", net.b))
        )

    def __enter__(self) -> Pair:
        self.host.start()
        self.guest.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for d in (self.guest, self.host):
            d.stop()

    def link_states(self, room_id: str) -> tuple[bool, bool]:
        return tuple(d.call("room.status", room_id=room_id)["peer_connected"] for d in (self.host, self.guest))  # type: ignore[return-value]

    def consistent(self, rooms: list[str], status: str = "agreement_reached") -> None:
        problems = []
        for room_id in rooms:
            for d in (self.host, self.guest):
                result = d.call("room.result", room_id=room_id, wait_s=10)
                if result["status"] != status:
                    problems.append(f"room {room_id}: {d.name} ended it as {result['status']}: {result.get('reason')}")
            problems += room_problems(self.host, self.guest, room_id)
        assert not problems, "\n".join(problems) + f"\nhost:\n{self.host.log_tail()}\nguest:\n{self.guest.log_tail()}"


@pytest.fixture
def veth(tmp_path: Path) -> Iterator[Pair]:
    with netns_pair() as net, Pair(net, tmp_path, KEEPALIVE) as pair:
        yield pair


def all_closed(pair: Pair, rooms: list[str], timeout: float) -> None:
    for d in (pair.host, pair.guest):
        wait_for(f"every room closed on the {d.name}",
                 lambda d=d: not {r["room_id"] for r in open_rows(d)} & set(rooms), timeout, poll=0.1)  # fmt: skip


def test_a_cut_longer_than_the_keepalive_then_restored_loses_and_doubles_nothing(veth: Pair, tmp_path: Path) -> None:
    host, guest = veth.host, veth.guest
    gate = tmp_path / "gate"
    rooms = open_rooms(host, guest, ROOMS, gate)
    by_hand = host.call("room.create", topic="by hand", fields=["price"], max_turns=6)["join_url"]
    manual = guest.call("room.join", join_url=by_hand)["room_id"]
    host.call("room.send", room_id=manual, text="100?", propose={"price": "100"})
    wait_for("the guest's turn", lambda: guest.call("room.status", room_id=manual)["your_turn"])
    gate.touch()
    wait_for("the rooms under way", lambda: progress(host)[0] >= ROOMS)
    started = time.monotonic()
    veth.net.cut()
    wait_for("both sides see the link dead", lambda: veth.link_states(manual) == (False, False), 10)
    dead_after = time.monotonic() - started
    queued = guest.call("room.send", room_id=manual, text="Fine.", accept=["price"])
    assert queued.get("queued") is True, queued
    moved_alone = progress(host)[0]
    time.sleep(1.0)  # more than the whole keepalive again: the host's agents answer into the void
    assert all(not any(veth.link_states(r)) for r in rooms[:2])
    veth.net.restore()
    cut_for = time.monotonic() - started
    wait_for("the link back", lambda: veth.link_states(manual) == (True, True), 15)
    wait_for("the queued move landed", lambda: host.call("room.status", room_id=manual)["agreed"] == 1, 15)
    all_closed(veth, rooms, 60)
    took = time.monotonic() - started
    print(f"link dead on both sides {dead_after:.2f} s after the cut, restored after {cut_for:.2f} s "
          f"(host progress {moved_alone} of {ROOMS * 7} when the guest queued); "
          f"all closed {took:.1f} s after the cut")  # fmt: skip
    veth.consistent(rooms)
    assert [e["kind"] for e in host.call("room.transcript", room_id=manual)["events"]].count("message") == 2
    assert not room_problems(host, guest, manual, closed=False)
    for d in (host, guest):
        d.stop()
        assert not database_problems(d.state_dir, dict.fromkeys(rooms, EVENTS_PER_ROOM))


def test_a_partition_longer_than_the_deadline_ends_the_room_as_timeout_on_both_sides(veth: Pair) -> None:
    host, guest = veth.host, veth.guest
    created = host.call("room.create", topic="deadline", fields=["price"], max_turns=6, deadline_s=3)
    room_id = guest.call("room.join", join_url=created["join_url"])["room_id"]
    host.call("room.send", room_id=room_id, text="100?", propose={"price": "100"})
    wait_for("the guest has it", lambda: guest.call("room.status", room_id=room_id)["seq"] == 2)
    started = time.monotonic()
    veth.net.cut()
    wait_for("the host's timeout", lambda: host.call("room.status", room_id=room_id)["phase"] == "closed", 10)
    host_at = time.monotonic() - started
    wait_for("the guest's local end", lambda: guest.call("room.status", room_id=room_id)["lifecycle"] == "error", 10)
    guest_at = time.monotonic() - started
    assert veth.link_states(room_id) == (False, False)  # each ended it on its own
    host_result = host.call("room.result", room_id=room_id)
    local = guest.call("room.result", room_id=room_id)
    assert host_result["status"] == "timeout" and local["status"] == "timeout" and local["local"] is True, local
    # Back together, both still say `timeout`. The guest's verdict stays its own (SPEC §14: not signed by
    # the host; it does not fetch the host's close afterwards): its transcript is the host's minus that close.
    veth.net.restore()
    time.sleep(1.5)  # a few keepalives and redials
    assert guest.call("room.result", room_id=room_id)["status"] == "timeout"
    assert host.call("room.result", room_id=room_id)["status"] == "timeout"
    host_lines = host.transcript(room_id).splitlines(keepends=True)
    guest_lines = guest.transcript(room_id).splitlines(keepends=True)
    assert host_lines[:-1] == guest_lines and '"kind":"room_closed"' in host_lines[-1]
    for d in (host, guest):
        folder = d.state_dir / "rooms" / room_id
        verified = verify((folder / "final_result.json").read_bytes(), (folder / "transcript.jsonl").read_bytes())
        assert verified.status == "timeout" and verified.ended_locally is (d is guest)
    print(f"host timed out {host_at:.2f} s after the cut, the guest {guest_at:.2f} s (deadline 3 s, grace 1 s)")


def test_loss_and_delay_keep_every_room_consistent(tmp_path: Path) -> None:
    tuning = {"keepalive_interval": 1.0, "dead_after": 6.0, "max_backoff": 0.5, "send_timeout": 10.0}
    with netns_pair(loss=0.10, delay=0.05, jitter=0.02, seed=12) as net, Pair(net, tmp_path, tuning) as pair:
        started = time.monotonic()
        gate = tmp_path / "gate"
        rooms = open_rooms(pair.host, pair.guest, ROOMS, gate)
        gate.touch()
        all_closed(pair, rooms, 90)
        took = time.monotonic() - started
        pair.consistent(rooms)
        print(f"{net.impairment}: {ROOMS} rooms joined and agreed in {took:.1f} s")


def test_the_namespaces_and_their_link_are_removed_also_when_the_test_fails() -> None:
    def names() -> set[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    before = names()
    for impaired in ({}, {"loss": 0.5, "delay": 0.01}):
        with pytest.raises(RuntimeError, match="the body failed"), netns_pair(**impaired) as net:
            assert {net.a.name, net.b.name} <= names()
            raise RuntimeError("the body failed")
        assert names() == before
