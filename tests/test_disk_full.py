"""Two real daemons, one of them on a small tmpfs that fills up mid-room: the API says so, neither side
runs ahead of its database, nothing one side could not save reaches the other, the daemon reports the
condition and recovers by itself when space returns, and the room then ends in a signed close with
byte-identical transcripts. Needs root to mount the tmpfs (CI runs as root); skipped otherwise."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from tmpfs import fill, tmpfs

from clawroomd.client import ApiError
from clawroomd.testing import DaemonProcess, wait_for

pytestmark = pytest.mark.slow
FAST = {"keepalive_interval": 0.5, "dead_after": 3.0, "max_backoff": 0.5, "send_timeout": 4.0, "guest_grace": 1.0}
FIELDS = ["a", "b", "c", "d"]
BIG = "€" * 8000  # with four 2,000-character values: a ~50 KB event, so the disk must find new space



def status(d: DaemonProcess, room_id: str) -> dict[str, Any]:
    return d.call("room.status", room_id=room_id)


def db_head(d: DaemonProcess, room_id: str) -> tuple[int, str]:
    db = sqlite3.connect(f"file:{d.state_dir / 'clawroomd.db'}?mode=ro", uri=True)
    try:
        seq, digest = db.execute(
            "SELECT seq, hash FROM events WHERE room_id = ? ORDER BY seq DESC LIMIT 1", (room_id,)
        ).fetchone()
    finally:
        db.close()
    return seq, digest.hex()


def memory_head(d: DaemonProcess, room_id: str) -> tuple[int, str]:
    s = status(d, room_id)
    return s["seq"], s["head"]


def assert_consistent(d: DaemonProcess, room_id: str) -> tuple[int, str]:
    """What the daemon serves is exactly what its database holds."""
    head = memory_head(d, room_id)
    assert head == db_head(d, room_id), f"{d.name} serves {head} but its database holds {db_head(d, room_id)}"
    return head


def finish(host: DaemonProcess, guest: DaemonProcess, room_id: str) -> None:
    """From wherever the room stands: one side proposes every field, the other accepts, both sign the close."""
    wait_for("both sides in step", lambda: memory_head(host, room_id) == memory_head(guest, room_id))
    first, second = (host, guest) if status(host, room_id)["your_turn"] else (guest, host)
    wait_for(f"{first.name}'s turn", lambda: status(first, room_id)["your_turn"])
    first.call("room.send", room_id=room_id, text="final", propose={f: f"v-{f}" for f in FIELDS})
    wait_for(f"{second.name}'s turn", lambda: status(second, room_id)["your_turn"])
    second.call("room.send", room_id=room_id, text="agreed", accept=FIELDS)
    def may_close() -> DaemonProcess | None:
        return next((d for d in (host, guest) if status(d, room_id)["your_turn"]), None)

    closer = wait_for("a side that may close", may_close)
    closer.call("room.close", room_id=room_id)
    other = guest if closer is host else host
    wait_for(f"{other.name} is asked to countersign", lambda: status(other, room_id)["your_turn"])
    other.call("room.close", room_id=room_id)
    for d in (host, guest):
        wait_for(f"{d.name} closed", lambda d=d: status(d, room_id)["phase"] == "closed")


@pytest.mark.parametrize("victim", ["host", "guest"])
def test_a_disk_that_fills_mid_room(tmp_path: Path, victim: str) -> None:
    daemons = {name: DaemonProcess(tmp_path / name, name=name, tuning=FAST) for name in ("host", "guest")}
    full = daemons[victim]
    with tmpfs(full.state_dir, 4096):
        host, guest = daemons["host"].start(), daemons["guest"].start()
        try:
            created = host.call("room.create", topic="disk", fields=FIELDS, max_turns=40)
            room_id = created["room_id"]
            guest.call("room.join", join_url=created["join_url"], label="g")
            host.call("room.send", room_id=room_id, text="opening", propose={"a": "1"})
            wait_for("the guest's turn", lambda: status(guest, room_id)["your_turn"])
            guest.call("room.send", room_id=room_id, text="counter", propose={"a": "2"})
            wait_for("the host has it", lambda: memory_head(host, room_id) == memory_head(guest, room_id))

            filler = fill(full.state_dir)
            what = ""
            for _ in range(12):  # big moves, turn by turn, until the full disk refuses one
                sender = host if status(host, room_id)["your_turn"] else guest
                try:
                    reply = sender.call("room.send", room_id=room_id, text=BIG,
                                        propose={f: "€" * 2000 for f in FIELDS})  # fmt: skip
                except ApiError as err:
                    assert err.code == "storage_failed" and "disk full" in str(err), err
                    what = f"{sender.name} refused with storage_failed"
                    break
                if reply.get("queued"):  # the host could not save the guest's move: it waits in the outbox
                    assert victim == "host"
                    what = "the guest's move stays queued"
                    break
                def settled() -> bool:
                    in_step = memory_head(host, room_id) == memory_head(guest, room_id)
                    return in_step or full.call("daemon.info")["storage"] != "ok"

                if wait_for("both sides in step, or the full side failing", settled) and memory_head(
                    host, room_id
                ) != memory_head(guest, room_id):
                    assert victim == "guest"
                    what = "the guest could not save the host's move"
                    break
            assert what, "the full disk never refused a write"

            assert full.call("daemon.info")["storage"] == "failing: disk full", what
            host_head, guest_head = assert_consistent(host, room_id), assert_consistent(guest, room_id)
            time.sleep(1.5)  # the guest redials and resubmits meanwhile: still nothing unsaved anywhere
            assert assert_consistent(host, room_id) == host_head and assert_consistent(guest, room_id) == guest_head
            if victim == "host":
                assert guest_head == host_head  # the guest never got an event the host did not save
            else:
                assert guest_head[0] <= host_head[0]

            filler.unlink()  # space returns: no restart
            wait_for("the full side recovers", lambda: full.call("daemon.info")["storage"] == "ok")
            wait_for("both sides in step", lambda: memory_head(host, room_id) == memory_head(guest, room_id))
            if what == "the guest's move stays queued":
                assert memory_head(host, room_id)[0] == host_head[0] + 1  # delivered once, by the outbox
            finish(host, guest, room_id)
            assert host.call("room.result", room_id=room_id)["status"] == "agreement_reached"
            assert_consistent(host, room_id)
            assert_consistent(guest, room_id)
            text = host.transcript(room_id)
            assert text == guest.transcript(room_id)
            assert [json.loads(line)["seq"] for line in text.splitlines()] == list(range(len(text.splitlines())))
            log = full.log_path.read_text()
            assert "Traceback" not in log
            assert 1 <= log.count("storage failing") <= 3, log  # once per kind (database, transcripts, checkpoint)
        finally:
            host.stop()
            guest.stop()
