"""`clawroom stats` (daemon.stats, clawroomd.daemon.stats) and `clawroom preflight` against rooms with
known outcomes: the SQL over a store whose results are written by hand (exact durations), then real
daemons driven through the CLI (one agreement, one cancelled, one active, one waiting for its guest), and
preflight's not-ready cases (no daemon, no owner context, a key others can read)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Daemon, clawroom, ok, out_json, two_daemons, wait_until

from clawroomd.cli import exits as cli
from clawroomd.daemon.stats import compute_stats
from clawroomd.daemon.store import Store


def _result(status: str, **extra: object) -> dict[str, object]:
    return {"status": status, "reason": "", "outcomes": {}, "unresolved": [], **extra}


def test_stats_sql_over_known_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    rooms = tmp_path / "state" / "rooms"
    hook = {"deliver_command": ["deliver"]}
    ids = [f"cr_{n:016x}" for n in range(1, 7)]
    roles = ["host", "host", "guest", "host", "host", "guest"]
    for rid, role, meta in zip(ids, roles, [{}, hook, hook, {}, {}, {}], strict=True):
        store.create_room(rid, role, meta, now_ms=1)  # type: ignore[arg-type]
    store.update_room(ids[0], phase="closed", result=_result("agreement_reached", duration_ms=1000, turns=4), now_ms=2)
    store.update_room(ids[1], phase="closed", result=_result("cancelled", duration_ms=3000, turns=1), now_ms=2)
    store.update_room(ids[2], phase="closed", result=_result("timeout", local=True), now_ms=2)  # no duration, turns
    store.update_room(ids[3], phase="active", now_ms=2)
    store.update_room(ids[5], phase="delivering", now_ms=2)
    for rid in ids[:3]:  # result files written for the closed rooms
        for name in ("final_result.json", "summary.md"):
            store.write_room_file(rid, name, b"{}")
    store.write_room_file(ids[1], "delivery.json", json.dumps({"status": "failed", "attempts": 5}).encode())
    # ids[2] has a hook that has not run yet: pending

    with store.transaction():  # a write in flight is not seen: the stats read committed rows only
        store.create_room("cr_00000000000000ff", "host", {}, now_ms=3)
        before = [(p.name, p.read_bytes()) for p in sorted((tmp_path / "state").glob("clawroomd.db*"))]
        stats = compute_stats(store.db_path, rooms)
        after = [(p.name, p.read_bytes()) for p in sorted((tmp_path / "state").glob("clawroomd.db*"))]
    assert before == after  # read-only: not a byte of the database changed
    assert stats == {
        "rooms_total": 6,
        "rooms_created": 4,
        "rooms_joined": 2,
        "active_now": 2,
        "invited_now": 1,
        "closed": 3,
        "avg_resolution_s": 2.0,
        "avg_turns": 2.5,
        "delivery_rate": 0.3333,
        "delivery": {"delivered": 1, "pending": 1, "failed": 1, "with_hook": 2},
        "by_status": {"agreement_reached": 1, "cancelled": 1, "timeout": 1},
    }
    assert list(stats["by_status"]) == ["agreement_reached", "cancelled", "timeout"]
    assert compute_stats(store.db_path, rooms)["rooms_total"] == 7  # once committed
    store.close()

    empty = Store(tmp_path / "empty")
    assert compute_stats(empty.db_path, tmp_path / "empty" / "rooms") == {
        "rooms_total": 0, "rooms_created": 0, "rooms_joined": 0, "active_now": 0, "invited_now": 0, "closed": 0,
        "avg_resolution_s": None, "avg_turns": None, "delivery_rate": None,
        "delivery": {"delivered": 0, "pending": 0, "failed": 0, "with_hook": 0}, "by_status": {},
    }  # fmt: skip
    empty.close()


# ------------------------------------------------------------------------------------------ real daemons


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    yield from two_daemons(tmp_path_factory.mktemp("stats"))


def _create(a: Daemon, *extra: str) -> dict[str, object]:
    made: dict[str, object] = out_json(a.clawroom("create", "--json", "--topic", "t", "--field", "x", *extra))
    return made


@pytest.mark.slow
def test_stats_over_rooms_with_known_outcomes(pair: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, b = pair
    delivered = tmp_path / "delivered"
    ok_hook = f"{sys.executable} -c \"import sys; open(sys.argv[1], 'a').write('x')\" {delivered}"
    slow_hook = f'{sys.executable} -c "import time; time.sleep(60)"'  # still running when stats are read: pending

    started = time.monotonic()
    agreed = _create(a, "--deliver", ok_hook)
    ok(b.clawroom("join", str(agreed["join_url"])))
    room = str(agreed["room_id"])
    wait_until(lambda: a.call("room.status", room_id=room)["your_turn"])
    ok(a.clawroom("send", "--room", room, "--propose", "x=1"))
    wait_until(lambda: b.call("room.status", room_id=room)["your_turn"])
    ok(b.clawroom("send", "--room", room, "--accept", "x"))
    wait_until(lambda: a.call("room.status", room_id=room)["your_turn"])
    ok(a.clawroom("close", "--room", room))
    wait_until(lambda: b.call("room.status", room_id=room)["your_turn"])
    ok(b.clawroom("close", "--room", room))
    first = out_json(a.clawroom("result", "--json", "--room", room, "--wait", "--timeout", "20"))
    first_wall = time.monotonic() - started

    started = time.monotonic()
    cancelled = _create(a, "--deliver", slow_hook)
    ok(b.clawroom("join", str(cancelled["join_url"])))
    ok(a.clawroom("cancel", "--room", str(cancelled["room_id"])))
    second = out_json(a.clawroom("result", "--json", "--room", str(cancelled["room_id"]), "--wait", "--timeout", "20"))
    second_wall = time.monotonic() - started

    active = _create(a)
    ok(b.clawroom("join", str(active["join_url"])))
    _create(a)  # never joined
    wait_until(lambda: delivered.exists())
    wait_until(lambda: a.call("room.result", room_id=room)["delivery"]["status"] == "delivered")

    assert (first["status"], first["turns"]) == ("agreement_reached", 2)
    assert (second["status"], second["turns"]) == ("cancelled", 0)
    assert 0 < first["duration_ms"] <= first_wall * 1000 and 0 <= second["duration_ms"] <= second_wall * 1000
    stats = out_json(a.clawroom("stats", "--json"))
    mean_s = (first["duration_ms"] + second["duration_ms"]) / 2000
    assert stats.pop("avg_resolution_s") == pytest.approx(mean_s, abs=0.001)
    assert stats == {
        "rooms_total": 4, "rooms_created": 4, "rooms_joined": 0, "active_now": 1, "invited_now": 1, "closed": 2,
        "avg_turns": 1.0, "delivery_rate": 0.5,
        "delivery": {"delivered": 1, "pending": 1, "failed": 0, "with_hook": 2},
        "by_status": {"agreement_reached": 1, "cancelled": 1},
    }  # fmt: skip
    for rid in (room, str(cancelled["room_id"])):  # the guest's result files too
        ok(b.clawroom("result", "--room", rid, "--wait", "--timeout", "20"))
    guest = out_json(b.clawroom("stats", "--json"))
    assert (guest["rooms_created"], guest["rooms_joined"], guest["active_now"], guest["closed"]) == (0, 3, 1, 2)
    assert guest["delivery"] == {"delivered": 2, "pending": 0, "failed": 0, "with_hook": 0}

    text = ok(a.clawroom("stats")).stdout
    lines = [line.split(None, 1) for line in text.splitlines()[2:7]]
    assert lines == [
        ["4", "Rooms Created"], ["1", "Active Now"], [f"{mean_s:.1f}s", "Avg Resolution"],
        ["50.0%", "Delivery Rate"], ["1.0", "Avg Turns"],
    ]  # fmt: skip
    assert text.startswith("Operations Dashboard") and "Results: agreement_reached 1 · cancelled 1" in text
    assert "1 delivered · 1 pending · 0 failed (of 2 closed; 2 with a --deliver hook)" in text
    assert a.call("daemon.stats") == {**stats, "avg_resolution_s": a.call("daemon.stats")["avg_resolution_s"]}
    gone = clawroom("--socket", str(tmp_path / "nobody.sock"), "stats")
    assert gone.returncode == cli.EXIT_NOT_RUNNING and "not running" in gone.stderr


@pytest.mark.slow
def test_preflight_not_ready_then_ready(pair: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pair
    home = tmp_path / "home"
    home.mkdir()
    nobody = clawroom("--socket", str(tmp_path / "nobody.sock"), "preflight", "--json", HOME=str(home))
    assert nobody.returncode == 1
    report = json.loads(nobody.stdout)
    assert report["status"] == "not_ready" and report["peer_id"] is None and report["daemon"]["running"] is False
    assert report["state_root"] == str(home / ".local" / "state" / "clawroom")
    checks = report["checks"]
    assert checks["daemon"]["status"] == "fail" and "clawroomd" in checks["daemon"]["fix"]
    assert checks["state_dir"]["status"] == "warn"  # not there yet: the daemon creates it
    assert {checks[n]["status"] for n in ("owner_context", "identity_key", "peer_listener", "version")} == {"skip"}
    said = clawroom("--socket", str(tmp_path / "nobody.sock"), "preflight", HOME=str(home))
    assert said.returncode == 1 and "NOT READY (1 of 10 checks failed)" in said.stdout
    assert "FAIL  daemon" in said.stdout and "-> start it: `clawroomd &`" in said.stdout

    # a running daemon without an owner context is not ready; the check says what to run
    no_ctx = a.clawroom("preflight", "--json")
    report = json.loads(no_ctx.stdout)
    assert no_ctx.returncode == 1 and report["status"] == "not_ready"
    assert [n for n, c in report["checks"].items() if c["status"] != "ok"] == ["owner_context"]
    assert report["checks"]["owner_context"]["fix"].startswith("clawroom context write --owner-name NAME")
    named = json.loads(a.clawroom("preflight", "--json", "--context", "work").stdout)
    assert "clawroom context write --profile work" in named["checks"]["owner_context"]["fix"]
    bad_name = a.clawroom("preflight", "--json", "--context", "Bad Name")
    assert bad_name.returncode == 1 and json.loads(bad_name.stdout)["checks"]["owner_context"]["status"] == "fail"

    ok(a.clawroom("context", "write", "--owner-name", "alice", "--task-context", "Align payment API"))
    key = a.state_dir / "identity.key"
    os.chmod(key, 0o644)
    try:
        leaky = a.clawroom("preflight", "--json")
        check = json.loads(leaky.stdout)["checks"]["identity_key"]
        assert leaky.returncode == 1 and check["status"] == "fail" and check["fix"] == f"chmod 600 {key}"
    finally:
        os.chmod(key, 0o600)
    ready = a.clawroom("preflight", "--json")
    assert ready.returncode == 0 and json.loads(ready.stdout)["status"] == "ready"
    assert ok(a.clawroom("preflight")).stdout.startswith("clawroom preflight: READY")
