"""`clawroom context write/show` and `--context` on create/join, through the real CLI against real daemons
in subprocesses (their sockets and state dirs in the test's own folder)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Daemon, ok, out_json, two_daemons

from clawroomd.cli.main import main as cli_main

pytestmark = pytest.mark.slow

WRITE = [
    "context", "write", "--owner-name", "alice", "--role", "Payment infrastructure lead",
    "--task-context", "Align payment API", "--goal", "Align on Payments v3 contract",
    "--constraint", "Must keep backward compat for 90d", "--priority", "Webhook reliability over latency",
    "--confirmed-fact", "Must keep backward compat", "--confirmed-fact", "REST only",
    "--private-fact", "ceiling 48,500 EUR", "--limit", "price<=52000", "--language", "en",
]  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    yield from two_daemons(tmp_path_factory.mktemp("ctxcli"))


def test_write_then_show_round_trip(pair: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pair
    wrote = ok(a.clawroom(*WRITE))
    assert "owner context of profile default" in wrote.stdout
    path = a.state_dir / "profiles" / "default.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    shown = out_json(a.clawroom("context", "show", "--json"))
    ctx = shown["context"]
    assert ctx["owner_name"] == "alice" and ctx["limits"] == ["price<=52000"]
    assert ctx["confirmed_facts"] == [
        {"id": "f1", "text": "Must keep backward compat"},
        {"id": "f2", "text": "REST only"},
    ]
    assert ctx["private_facts"] == ["ceiling 48,500 EUR"] and "never" in shown["private_facts_notice"]

    text = ok(a.clawroom("context", "show")).stdout
    assert "PRIVATE facts (never leave this machine" in text and "[private] ceiling 48,500 EUR" in text
    assert "f2  REST only" in text and "Role: Payment infrastructure lead" in text

    # The output of `show --json` goes back in with --from-file; options given override it.
    saved = tmp_path / "ctx.json"
    saved.write_text(json.dumps(shown))
    again = out_json(
        a.clawroom("context", "write", "--profile", "work", "--from-file", str(saved), "--role", "CFO", "--json")
    )
    assert again["profile"] == "work" and again["created"] is True
    assert again["context"] == {**ctx, "role": "CFO"}

    # A merge changes only what is named; a list option replaces that list.
    out_json(a.clawroom("context", "write", "--profile", "work", "--goal", "Ship it", "--json"))
    work = out_json(a.clawroom("context", "show", "--profile", "work", "--json"))["context"]
    assert work["goals"] == ["Ship it"] and work["role"] == "CFO" and work["private_facts"] == ctx["private_facts"]


def test_rooms_take_a_profile_and_the_card_shows_our_owner(pair: tuple[Daemon, Daemon]) -> None:
    a, b = pair
    ok(a.clawroom(*WRITE))
    ok(b.clawroom("context", "write", "--profile", "bob", "--owner-name", "bob", "--role", "Backend platform engineer"))
    created = out_json(a.clawroom("create", "--topic", "API", "--field", "price", "--json"))
    room = created["room_id"]
    assert created["lifecycle"] == "joining"
    card = ok(a.clawroom("status", "--room", room)).stdout
    assert "Status: JOINING" in card
    assert "Owner Context (alice, yours; kept on this machine)" in card
    for line in (
        "Role: Payment infrastructure lead",
        "Goal: Align on Payments v3 contract",
        "Constraint: Must keep backward compat for 90d",
        "Priority: Webhook reliability over latency",
    ):
        assert line in card
    assert "48,500" not in card
    joined = out_json(b.clawroom("join", created["join_url"], "--context", "bob", "--json"))
    assert joined["owner"]["owner_name"] == "bob"
    shown = out_json(b.clawroom("context", "show", "--room", room, "--json"))
    assert shown["room_id"] == room and shown["context"]["role"] == "Backend platform engineer"
    assert "bob" not in ok(a.clawroom("status", "--room", room)).stdout  # the peer's context is not ours to show
    ok(a.clawroom("context", "write", "--room", room, "--priority", "Zero downtime"))
    assert "Priority: Zero downtime" in ok(a.clawroom("status", "--room", room)).stdout


def test_cli_errors(pair: tuple[Daemon, Daemon], tmp_path: Path) -> None:
    a, _ = pair
    bad = a.clawroom("context", "write", "--profile", "x", "--goal", "g")
    assert bad.returncode == 2 and "owner_name is required" in bad.stderr
    bad = a.clawroom("context", "write", "--profile", "x", "--owner-name", "a", "--goal", "")
    assert bad.returncode == 2 and "goals[0] is empty" in bad.stderr
    assert a.clawroom("context", "show", "--profile", "nobody").returncode == 1
    assert a.clawroom("create", "--topic", "t", "--field", "p", "--context", "nobody").returncode == 1
    garbage = tmp_path / "g.json"
    garbage.write_text("{nope")
    bad = a.clawroom("context", "write", "--from-file", str(garbage))
    assert bad.returncode == 2 and "is not JSON" in bad.stderr
    assert a.clawroom("context", "write").returncode == 2  # nothing to write
    both = a.clawroom("context", "write", "--room", "cr_00", "--profile", "p", "--owner-name", "a")
    assert both.returncode == 2 and "not allowed with" in both.stderr


@pytest.mark.parametrize("action", ["write", "show"])
def test_context_help(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["context", action, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = ["--room", "--profile", "--json"]
    if action == "write":
        options += ["--owner-name", "--role", "--task-context", "--goal", "--constraint", "--priority"]
        options += ["--confirmed-fact", "--private-fact", "--limit", "--language", "--from-file", "--replace"]
    for option in options:
        assert option in text, option
