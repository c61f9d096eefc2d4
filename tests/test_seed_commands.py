"""The product page's commands (../shared/seed/) exactly as it prints them, through the real CLI in
subprocesses against two real daemons: create with `--agents 2`, join by room id (without LAN discovery: a clear
message naming the join URL), `status --room <short id> --watch`, `--deliver` on both sides,
`preflight --json`, `context write`; and `--room` given as the start of a room id."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import Daemon, cli_env, ok, out_json, two_daemons, wait_until

from clawroomd.cli import exits as cli

pytestmark = pytest.mark.slow

# A delivery hook: appends what it got (summary.md on stdin, the result's path) to the file in argv[1].
HOOK = """
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"stdin": sys.stdin.read(), "result": os.environ["CLAWROOM_RESULT"],
                        "room": os.environ["CLAWROOM_ROOM_ID"]}) + "\\n")
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    yield from two_daemons(tmp_path_factory.mktemp("seed"))


def deliveries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_create_as_printed_and_agents_other_than_two(pair: tuple[Daemon, Daemon]) -> None:
    a, _ = pair
    made = ok(a.clawroom("create", "--topic", "Q2 API contract", "--agents", "2")).stdout
    room = made.split()[1]
    assert made.startswith(f"Room {room} created; you are the host.") and "Join URL: clawroom://join/" + room in made
    assert "one field `outcome`" in made  # no --field on the page: the room gets one, and says so
    view = a.call("room.status", room_id=room)
    assert view["topic"] == "Q2 API contract" and [f["name"] for f in view["fields"]] == ["outcome"]
    assert view["max_turns"] == 20 and view["lifecycle"] in ("invited", "joining")

    before = len(a.call("room.list")["rooms"])
    for bad in ("3", "1", "0", "-2"):
        refused = a.clawroom("create", "--topic", "Q2 API contract", "--agents", bad)
        assert refused.returncode == cli.EXIT_USAGE and "--agents can only be 2" in refused.stderr, bad
    assert a.clawroom("create", "--topic", "t", "--agents", "two").returncode == cli.EXIT_USAGE
    assert len(a.call("room.list")["rooms"]) == before  # nothing was created
    ok(a.clawroom("cancel", "--room", room))


def test_join_by_room_id_names_the_join_url_way(pair: tuple[Daemon, Daemon]) -> None:
    a, b = pair
    room = out_json(a.clawroom("create", "--json", "--topic", "Q2 API contract", "--agents", "2"))
    rid, url = room["room_id"], room["join_url"]
    for short in ("cr_8f2a", rid[:7]):  # not a whole room id: a LAN host is asked by the whole id
        said = b.clawroom("join", "--room", short, "--role", "guest")
        assert said.returncode == cli.EXIT_USAGE and "is not a room id" in said.stderr, said
    # The whole id, with LAN discovery off on this daemon: no host to ask, and the message names the URL way.
    said = b.clawroom("join", "--room", rid, "--role", "guest")
    assert said.returncode == cli.EXIT_UNREACHABLE, said
    assert "start clawroomd with --lan" in said.stderr
    assert "clawroom join 'clawroom://join/" in said.stderr and "--join-url" in said.stderr
    as_host = b.clawroom("join", "--room", rid, "--role", "host")
    assert as_host.returncode == cli.EXIT_USAGE and "clawroom create" in as_host.stderr
    wrong = b.clawroom("join", url, "--room", "cr_0123456789abcdef")  # a URL for another room than --room
    assert wrong.returncode == cli.EXIT_USAGE and f"which is for room {rid}" in wrong.stderr
    assert rid not in [r["room_id"] for r in b.call("room.list")["rooms"]]  # nothing joined
    assert a.call("room.status", room_id=rid)["participants"]["guest"]["peer_id"] is None
    joined = out_json(b.clawroom("join", url, "--room", rid[:8], "--role", "guest", "--json"))  # URL + short id
    assert joined["room_id"] == rid
    ok(a.clawroom("cancel", "--room", rid))


def test_the_page_from_preflight_to_delivered_result(pair: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, b = pair
    # Write owner context, exactly as printed.
    wrote = ok(
        a.clawroom(
            "context", "write", "--owner-name", "alice", "--task-context", "Align payment API",
            "--confirmed-fact", "Must keep backward compat",
        )
    )  # fmt: skip
    assert "Wrote the owner context of profile default" in wrote.stdout or "Updated" in wrote.stdout
    ctx = out_json(a.clawroom("context", "show", "--json"))["context"]
    assert ctx["owner_name"] == "alice" and ctx["task_context"] == "Align payment API"
    assert ctx["confirmed_facts"] == [{"id": "f1", "text": "Must keep backward compat"}]
    ok(b.clawroom("context", "write", "--owner-name", "bob", "--task-context", "Smooth migration"))

    # Run preflight check: ready on both sides, naming the daemon's own state dir, peer id and socket.
    for d in (a, b):
        report = out_json(d.clawroom("preflight", "--json"))
        info = d.call("daemon.info")
        assert report["status"] == "ready" and report["state_root"] == info["state_dir"] == str(d.state_dir)
        assert report["peer_id"] == info["peer_id"] and report["socket"] == str(d.socket)
        assert report["daemon"]["running"] and report["daemon"]["listen"] == [f"127.0.0.1:{d.port}"]
        assert {n: c["status"] for n, c in report["checks"].items()} == dict.fromkeys(
            ("daemon", "version", "socket", "state_dir", "identity_key", "storage", "disk_space", "owner_context",
             "peer_listener", "advertise"), "ok",
        )  # fmt: skip

    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    got = {side: tmp_path / f"{side}.jsonl" for side in ("host", "guest")}
    made = out_json(
        a.clawroom("create", "--json", "--topic", "Q2 API contract", "--agents", "2", "--label", "stripe-agent",
                   "--deliver", f"{sys.executable} {hook} {got['host']}")
    )  # fmt: skip
    rid, short = made["room_id"], made["room_id"][:7]  # cr_8f2a: the page's short form

    # Join as guest (the page's --join-url form), then watch the status by the short id, as printed.
    ok(b.clawroom("join", "--join-url", made["join_url"], "--role", "guest", "--label", "backend-agent",
                  "--deliver", f"{sys.executable} {hook} {got['guest']}"))  # fmt: skip
    watch = subprocess.Popen(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(a.socket), "status", "--room", short, "--watch"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: a.call("room.status", room_id=rid)["your_turn"])
        ok(a.clawroom("send", "--room", short, "--text", "Fixed 30s retry.", "--propose", "outcome=fixed 30s x5"))
        wait_until(lambda: b.call("room.status", room_id=rid)["your_turn"])
        ok(b.clawroom("send", "--room", short, "--text", "Accepted.", "--accept", "outcome"))
        wait_until(lambda: a.call("room.status", room_id=rid)["your_turn"])
        ok(a.clawroom("close", "--room", short))
        wait_until(lambda: b.call("room.status", room_id=rid)["your_turn"])
        ok(b.clawroom("close", "--room", short))
        out, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert f"Live Session {rid}" in out and "agreement_reached" in out

    # On close each side's --deliver hook got its owner's summary and the result's path.
    for d, side in ((a, "host"), (b, "guest")):
        (delivered,) = wait_until(lambda side=side: deliveries(got[side]))
        result = out_json(d.clawroom("result", "--room", short, "--wait", "--timeout", "20", "--json"))
        assert result["status"] == "agreement_reached" and delivered["room"] == rid
        assert delivered["result"] == result["files"]["final_result"]
        assert delivered["stdin"] == Path(result["files"]["summary"]).read_text()
        assert "fixed 30s x5" in delivered["stdin"]
        wait_until(lambda d=d: d.call("room.result", room_id=rid)["delivery"]["status"] == "delivered")
        assert "Delivery: delivered after 1 attempt(s)" in ok(d.clawroom("result", "--room", short)).stdout
    # each owner got their own version
    assert "Other side: backend-agent" in deliveries(got["host"])[0]["stdin"]
    assert "Other side: stripe-agent" in deliveries(got["guest"])[0]["stdin"]


def test_room_given_by_the_start_of_its_id(pair: tuple[Daemon, Daemon]) -> None:
    a, _ = pair
    made: list[str] = []
    while len({r[:4] for r in made}) == len(made):  # until two rooms share their first hex digit (17 at most)
        made.append(a.call("room.create", topic="t", fields=["x"])["room_id"])
    rooms = [r["room_id"] for r in a.call("room.list")["rooms"]]
    free = next(p for p in (f"cr_{n:02x}" for n in range(256)) if not any(r.startswith(p) for r in rooms))
    unknown = a.clawroom("status", "--room", free)
    assert unknown.returncode == cli.EXIT_UNKNOWN_ROOM and "no room on this daemon starts with" in unknown.stderr
    ambiguous = a.clawroom("status", "--room", made[-1][:4])
    assert ambiguous.returncode == cli.EXIT_USAGE and "give more of the id" in ambiguous.stderr
    full = out_json(a.clawroom("status", "--json", "--room", rooms[0]))
    assert full["room_id"] == rooms[0]
    unique = next(
        rid[: n + 3] for n in range(1, 17) for rid in rooms if sum(r.startswith(rid[: n + 3]) for r in rooms) == 1
    )
    assert out_json(a.clawroom("status", "--json", "--room", unique))["room_id"].startswith(unique)
    for rid in made:
        a.call("room.cancel", room_id=rid)
