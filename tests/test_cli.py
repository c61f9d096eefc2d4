"""The `clawroom` CLI against two real daemons in subprocesses: a whole room from create to a closed
agreement_reached, the documented exit codes, live watch, the demo, and every command's --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.cli import exits as cli
from clawroomd.cli.main import main as cli_main
from clawroomd.client import DaemonNotRunning
from clawroomd.demo.negotiator import decide
from clawroomd.testing import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "XDG_RUNTIME_DIR", "CLAWROOM_SOCKET")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Daemon(DaemonProcess):
    """A real clawroomd in a subprocess (clawroomd.testing), driven here through the CLI."""

    def clawroom(self, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
        return clawroom("--socket", str(self.socket), *args, timeout=timeout, **env)


def clawroom(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawroomd.cli.main", *args],
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_daemon(folder: Path) -> Daemon:
    d = Daemon(folder, name=folder.name, log_level="warning")
    try:
        d.start(timeout=20)
    except RuntimeError as exc:
        pytest.fail(f"clawroomd did not start: {exc}")
    return d


def stop_daemon(d: Daemon) -> None:
    d.stop(timeout=15)


def two_daemons(root: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """Daemons `a` (host) and `b` (guest) in `root`, for a module's tests (a generator fixture body)."""
    a = start_daemon(root / "a")
    try:
        b = start_daemon(root / "b")
    except BaseException:
        stop_daemon(a)
        raise
    yield a, b
    stop_daemon(b)  # guest first: its link closes and the host stops without waiting on it
    stop_daemon(a)


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    yield from two_daemons(tmp_path_factory.mktemp("cli"))


def wait_until(pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the room to move")
        time.sleep(0.02)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def out_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc).stdout)


# ------------------------------------------------------------------------------------------- a whole room
def test_full_room_through_the_cli(daemons: tuple[Daemon, Daemon]) -> None:
    a, b = daemons
    created = out_json(
        a.clawroom(
            "create", "--json", "--topic", "Q2 API contract", "--agents", "2", "--goal", "Agree on Payments v3",
            "--field", "amount_format=how amounts are written", "--field", "hash_algorithm",
            "--max-turns", "6", "--turn-timeout", "10m", "--deadline", "2h", "--label", "stripe-agent",
        )
    )  # fmt: skip
    room, url = created["room_id"], created["join_url"]
    assert created["lifecycle"] == "invited" and url.startswith("clawroom://join/" + room)
    assert [f["name"] for f in created["fields"]] == ["amount_format", "hash_algorithm"]
    assert created["fields"][0]["description"] == "how amounts are written"
    assert created["deadlines"]["turn_timeout_ms"] == 600_000

    # live views on the host started before the guest joins; they must end by themselves when the room closes
    watch_json = subprocess.Popen(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(a.socket), "watch", "--json", "--room", room],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    status_watch = subprocess.Popen(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(a.socket), "status", "--watch", "--room", room],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watch = status_watch  # replaced below; keeps the clean-up simple if the join fails
    try:
        joined = out_json(b.clawroom("join", url, "--role", "guest", "--label", "backend-agent", "--json"))
        assert joined["room_id"] == room and joined["role"] == "guest" and joined["lifecycle"] == "active"
        watch = subprocess.Popen(  # and one on the guest's daemon, which knows the room once joined
            [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(b.socket), "watch", "--room", room],
            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        a_turn = lambda: a.call("room.status", room_id=room)["your_turn"]  # noqa: E731
        b_turn = lambda: b.call("room.status", room_id=room)["your_turn"]  # noqa: E731
        wait_until(a_turn)
        sent = ok(
            a.clawroom(
                "send", "--room", room, "--text", "Proposing minor units and SHA-256.",
                "--propose", "amount_format=minor units", "--propose", "hash_algorithm=SHA-256 over raw JSON",
            )
        )  # fmt: skip
        assert "propose amount_format = minor units" in sent.stdout
        assert a.clawroom("send", "--room", room, "--text", "again").returncode == cli.EXIT_NOT_YOUR_TURN

        wait_until(b_turn)
        bad = b.clawroom("send", "--room", room, "--propose", "no_such_field=1")
        assert bad.returncode == cli.EXIT_USAGE and "no_such_field" in bad.stderr
        ok(b.clawroom("send", "--room", room, "--text", "Both fine.", "--accept", "amount_format",
                      "--accept", "hash_algorithm", "--sid", "b-1"))  # fmt: skip
        # the same --sid never sends twice (retried as text only: a retried shorthand --accept FIELD is
        # refused by the daemon because the proposal it names no longer stands; see the report)
        again = out_json(b.clawroom("send", "--json", "--room", room, "--text", "Both fine.", "--sid", "b-1"))
        assert again["duplicate"] is True and again["event"]["body"]["moves"][0]["op"] == "accept"

        card = ok(a.clawroom("status", "--room", room)).stdout
        assert f"Live Session {room}" in card and "ACTIVE" in card and "Outcomes 2/2" in card
        assert "stripe-agent" in card and "backend-agent" in card and "turn 2/6" in card

        wait_until(lambda: a.call("room.status", room_id=room)["agreed"] == 2)
        assert "Proposed closing" in ok(a.clawroom("close", "--room", room)).stdout
        wait_until(lambda: b.call("room.status", room_id=room)["pending_close"])
        assert "Countersigned" in ok(b.clawroom("close", "--room", room)).stdout

        results = [wait_until(lambda d=d: _result(d, room)) for d in (a, b)]
        for watcher in (watch, watch_json, status_watch):
            watcher.wait(timeout=10)
    finally:
        for watcher in (watch, watch_json, status_watch):
            if watcher.poll() is None:
                watcher.kill()
    assert results[0]["status"] == results[1]["status"] == "agreement_reached"
    assert results[0]["head"] == results[1]["head"] and results[0]["outcomes"] == results[1]["outcomes"]
    assert results[0]["outcomes"] == {"amount_format": "minor units", "hash_algorithm": "SHA-256 over raw JSON"}

    # both daemons hold byte-identical transcripts, and the API agrees with the files
    files = [(d.state_dir / "rooms" / room / "transcript.jsonl").read_bytes() for d in (a, b)]
    assert files[0] == files[1] and len(files[0].splitlines()) == results[0]["events"]
    api = [out_json(d.clawroom("transcript", "--json", "--room", room))["events"] for d in (a, b)]
    assert api[0] == api[1] == [json.loads(line) for line in files[0].splitlines()]

    out, err = watch.communicate()
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert "system" in lines[0] and "Room created. Topic: Q2 API contract. Max turns: 6." in lines[0]
    assert "backend-agent joined as guest" in lines[1]
    assert "backend-agent Both fine." in " ".join(out.split()) and "propose amount_format = minor units" in out
    assert "Room closed. Result: agreement_reached." in lines[-1] and "Turns: 2/6. Outcomes: 2/2." in lines[-1]
    notes = [json.loads(line) for line in watch_json.communicate()[0].splitlines()]
    assert watch_json.returncode == 0 and notes[-1]["method"] == "room.closed"
    assert [n["params"]["event"]["seq"] for n in notes if n["method"] == "room.event"] == list(range(len(api[0])))
    card_out = status_watch.communicate()[0]
    assert status_watch.returncode == 0 and card_out.count("Live Session") >= 2 and "CLOSED" in card_out

    # after the close
    closed = a.clawroom("send", "--room", room, "--text", "late")
    assert closed.returncode == cli.EXIT_ROOM_CLOSED, closed.stderr
    text = ok(b.clawroom("result", "--room", room)).stdout
    assert "agreement_reached" in text and "Turns: 2/6" in text and results[1]["head"] in text
    assert room in ok(a.clawroom("list")).stdout
    assert [r["room_id"] for r in out_json(b.clawroom("list", "--json"))["rooms"]] == [room]
    replay = ok(a.clawroom("watch", "--room", room, "--from", "2")).stdout  # a closed room: replay and exit 0
    assert "Room created" not in replay and "Room closed" in replay


def _result(d: Daemon, room: str) -> dict[str, Any] | None:
    status = d.call("room.status", room_id=room)
    return d.call("room.result", room_id=room) if status["result"] else None


# ---------------------------------------------------------------------------------------------- exit codes
def test_exit_codes(daemons: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, b = daemons
    unknown = a.clawroom("status", "--room", "cr_0123456789abcdef")
    assert unknown.returncode == cli.EXIT_UNKNOWN_ROOM and "clawroom list" in unknown.stderr
    as_json = a.clawroom("result", "--json", "--room", "cr_0123456789abcdef")
    assert as_json.returncode == cli.EXIT_UNKNOWN_ROOM
    assert json.loads(as_json.stdout) == {"error": "unknown_room", "message": json.loads(as_json.stdout)["message"],
                                          "exit_code": cli.EXIT_UNKNOWN_ROOM}  # fmt: skip

    gone = clawroom("--socket", str(tmp_path / "nobody.sock"), "list")
    assert gone.returncode == cli.EXIT_NOT_RUNNING and "not running" in gone.stderr
    via_env = clawroom("info", "--json", CLAWROOM_SOCKET=str(a.socket))  # $CLAWROOM_SOCKET picks the daemon
    assert out_json(via_env)["peer_id"] == a.call("daemon.info")["peer_id"]

    for url in ("clawroom://join/cr_0123456789abcdef?peer=nope&s=x", "https://example.com/join"):
        bad = b.clawroom("join", url)
        assert bad.returncode == cli.EXIT_JOIN_FAILED, (url, bad.stderr)
    only_id = b.clawroom("join", "cr_0123456789abcdef")
    assert only_id.returncode == cli.EXIT_JOIN_FAILED and "room id, not a join URL" in only_id.stderr
    no_url = b.clawroom("join", "--room", "cr_0123456789abcdef")  # by room id: asks on the LAN, which is off
    assert no_url.returncode == cli.EXIT_UNREACHABLE and "start clawroomd with --lan" in no_url.stderr
    as_host = b.clawroom("join", "clawroom://join/x", "--role", "host")
    assert as_host.returncode == cli.EXIT_USAGE and "clawroom create" in as_host.stderr

    # a used invite is refused by the host: exit 8 with the reason
    room = out_json(a.clawroom("create", "--json", "--topic", "t", "--field", "x"))
    ok(b.clawroom("join", room["join_url"]))
    second = start_daemon(tmp_path / "c")
    try:
        used = second.clawroom("join", room["join_url"], "--timeout", "10")
        assert used.returncode == cli.EXIT_JOIN_FAILED and "already been used" in used.stderr
    finally:
        stop_daemon(second)
    cancelled = ok(b.clawroom("cancel", "--room", room["room_id"], "--reason", "test over"))
    assert "Cancelled" in cancelled.stdout
    assert wait_until(lambda: _result(a, room["room_id"]))["status"] == "cancelled"

    assert a.clawroom("create", "--topic", "t", "--field", "x", "--deadline", "soon").returncode == cli.EXIT_USAGE
    assert a.clawroom("create", "--topic", "t", "--field", "x", "--agents", "3").returncode == cli.EXIT_USAGE
    assert a.clawroom("create", "--topic", "t", "--field", "Bad Name").returncode == cli.EXIT_USAGE
    assert a.clawroom("send", "--room", room["room_id"]).returncode == cli.EXIT_USAGE
    assert clawroom("nonsense").returncode == cli.EXIT_USAGE


def test_describe_error_table() -> None:
    from clawroomd.client import ApiError, ConnectionLost

    assert cli.describe_error(ApiError("not_your_turn", "m"))[1] == 4
    assert cli.describe_error(ApiError("room_closed", "m"))[1] == 5
    assert cli.describe_error(ApiError("unknown_room", "m"))[1] == 6
    assert cli.describe_error(ApiError("peer_unreachable", "m"))[1] == 7
    assert cli.describe_error(ApiError("invite_rejected", "m"))[1] == 8
    assert cli.describe_error(ApiError("stale_state", "m"))[1] == 9
    assert cli.describe_error(ApiError("conflict", "m"))[1] == 1
    assert cli.describe_error(DaemonNotRunning("x"))[1] == cli.describe_error(ConnectionLost("x"))[1] == 3
    assert cli.describe_error(TimeoutError())[1] == 7
    assert cli.describe_error(KeyboardInterrupt())[1] == 130
    assert cli.describe_error(ValueError("boom"))[:2] == ("internal error: ValueError: boom", 1)


# -------------------------------------------------------------------------------------------------- demo
def test_demo_json() -> None:
    proc = clawroom("demo", "--json", timeout=60)
    report = out_json(proc)
    assert report["status"] == "agreement_reached" and report["agree"] and report["heads_equal"]
    assert report["host"]["head"] == report["guest"]["head"] and report["kept"] is None
    assert report["host"]["outcomes"] == report["guest"]["outcomes"] and len(report["host"]["outcomes"]) == 4
    assert report["host"]["outcomes"]["webhook_retry_policy"].startswith("configurable per endpoint")
    assert report["elapsed_s"] < 15


def test_negotiator_countersigns_and_waits() -> None:
    field = {"name": "x", "status": "agreed", "value": "1", "proposals": {}}
    room = {"fields": [field], "turn": "guest", "turns": 1, "max_turns": 4, "pending_close": None}
    assert decide({"you": "guest", "room": room, "transcript": []}) == {"action": "close"}
    pending = {**room, "pending_close": {"proposer": "guest", "status": "agreement_reached"}}
    assert decide({"you": "guest", "room": pending, "transcript": []}) == {"action": "wait"}
    assert decide({"you": "host", "room": pending, "transcript": []}) == {"action": "close"}


# -------------------------------------------------------------------------------------------------- help
COMMAND_OPTIONS = {
    "create": ["--topic", "--goal", "--field", "--max-turns", "--first", "--turn-timeout", "--deadline",
               "--advertise", "--agent", "--label"],
    "join": ["URL", "--label", "--agent", "--role", "--timeout"],
    "send": ["--room", "--text", "--propose", "--accept", "--reject", "--sid", "--expect-seq"],
    "status": ["--room", "--watch"],
    "watch": ["--room", "--from"],
    "list": [],
    "close": ["--room", "--expect-seq"],
    "cancel": ["--room", "--reason"],
    "result": ["--room"],
    "info": [],
    "transcript": ["--room"],
    "demo": ["--keep"],
    "preflight": ["--context"],
    "stats": [],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_help_mentions_options(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in [*COMMAND_OPTIONS[command], "--json", "--socket", "exit codes"]:
        assert option in text, (command, option)


def test_top_level_help_lists_commands_and_exit_codes() -> None:
    text = ok(clawroom("--help")).stdout
    for command in COMMAND_OPTIONS:
        assert command in text
    for line in ("3  the daemon is not running", "4  not your turn", "8  bad join URL", "9  the room moved on"):
        assert line in text


def test_cli_imports_stay_light() -> None:
    code = (
        "import sys, clawroomd.cli.main as m, clawroomd.cli.commands, clawroomd.cli.render;"
        "print(sorted(n for n in ('trio', 'cryptography', 'cbor2') if n in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "[]", proc.stderr
