"""Owner context (issue 9 item 1): the strict reader, the files (0600, atomic, in the state dir), the copy
of a profile into a room on create/join, the card, the lifecycle, and the agent's stdin document. Real
daemons in one trio run (clawroomd.testing.inprocess): SQLite stores, keys, loopback links."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.core.joinurl import JoinURL
from clawroomd.daemon.errors import ERROR_CODES, ApiError
from clawroomd.daemon.owner_context import MAX_ITEMS, ContextError, OwnerContext
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.daemons import free_port
from clawroomd.testing.inprocess import call, open_daemon

ALICE: dict[str, Any] = {
    "owner_name": "alice",
    "role": "Payment infrastructure lead",
    "task_context": "Align the Payments v3 contract.\nKeep it short.",
    "goals": ["Align on Payments v3 contract"],
    "constraints": ["Must keep backward compat for 90d"],
    "priorities": ["Webhook reliability over latency"],
    "confirmed_facts": ["We serve 200k webhook consumers", "Our API is REST"],
    "private_facts": ["our ceiling is 48,500 EUR"],
    "limits": ["price<=52000"],
    "language": "en",
}


# ------------------------------------------------------------------------------------------- the reader
def test_a_full_context_reads_and_writes_back_the_same() -> None:
    ctx = OwnerContext.from_json(ALICE)
    data = ctx.to_json()
    assert data["confirmed_facts"] == [
        {"id": "f1", "text": "We serve 200k webhook consumers"},
        {"id": "f2", "text": "Our API is REST"},
    ]
    assert OwnerContext.from_json(data) == ctx
    assert "private_facts" not in json.dumps(ctx.card()) and "48,500" not in json.dumps(ctx.card())
    agent = ctx.for_agent()
    assert agent["private_facts"] == ["our ceiling is 48,500 EUR"] and "never" in agent["private_facts_notice"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("alice", "is a JSON object"),
        ({}, "owner_name is required"),
        ({"owner_name": "a", "colour": "red"}, "unknown key(s) 'colour'"),
        ({"owner_name": 5}, "owner_name must be a text"),
        ({"owner_name": None}, "owner_name must be a text"),
        ({"owner_name": "  "}, "owner_name is empty"),
        ({"owner_name": "a", "role": ""}, "role is empty"),
        ({"owner_name": "a", "goals": "win"}, "goals must be a list"),
        ({"owner_name": "a", "goals": ["ok", ""]}, "goals[1] is empty"),
        ({"owner_name": "a", "goals": [3]}, "goals[0] must be a text"),
        ({"owner_name": "a", "goals": ["x", "x"]}, "the same entry twice"),
        ({"owner_name": "a", "constraints": ["one\ntwo"]}, "constraints[0] holds a control character or line break"),
        ({"owner_name": "a\x1b[31m"}, "owner_name holds a control character"),
        ({"owner_name": "a", "priorities": ["p\u2028q"]}, "line break (U+2028)"),
        ({"owner_name": "a", "private_facts": ["\ud800"]}, "U+D800"),
        ({"owner_name": "a", "task_context": "ok\x07"}, "only newlines and tabs"),
        ({"owner_name": "a" * 201}, "at most 200"),
        ({"owner_name": "a", "goals": ["g"] * 1 + [f"g{i}" for i in range(MAX_ITEMS)]}, f"at most {MAX_ITEMS}"),
        ({"owner_name": "a", "goals": ["x" * 1001]}, "at most 1000"),
        ({"owner_name": "a", "limits": [""]}, "limits[0] is empty"),
        ({"owner_name": "a", "limits": ["price<=1\nprice<=2"]}, "one line"),
        ({"owner_name": "a", "language": "English please"}, "not a language tag"),
        ({"owner_name": "a", "confirmed_facts": [{"id": "F-1", "text": "t"}]}, "not a fact id"),
        ({"owner_name": "a", "confirmed_facts": [{"id": "x", "text": "t"}, {"id": "x", "text": "u"}]}, "same id"),
        ({"owner_name": "a", "confirmed_facts": [{"text": "t", "by": "me"}]}, "is a text or"),
        ({"owner_name": "a", "confirmed_facts": ["t", "t"]}, "the same fact twice"),
    ],
)
def test_bad_contexts_are_refused_saying_what_is_wrong(data: Any, says: str) -> None:
    with pytest.raises(ContextError) as err:
        OwnerContext.from_json(data)
    assert says in str(err.value)


def test_the_whole_context_has_a_size_limit() -> None:
    big = {key: [f"{i:02d} " + "x" * 990 for i in range(MAX_ITEMS)] for key in ("goals", "constraints")}
    with pytest.raises(ContextError, match="too large"):
        OwnerContext.from_json({"owner_name": "a", **big})


def test_a_change_keeps_what_it_does_not_name_and_the_ids_of_facts_it_keeps() -> None:
    base = OwnerContext.from_json(ALICE)
    changed = OwnerContext.from_json(
        {"role": "CFO", "confirmed_facts": ["Our API is REST", "We ship weekly"]}, base=base
    )
    assert changed.role == "CFO" and changed.goals == base.goals and changed.private_facts == base.private_facts
    assert [(f.id, f.text) for f in changed.confirmed_facts] == [("f2", "Our API is REST"), ("f3", "We ship weekly")]
    assert OwnerContext.from_json({"role": None}, base=base).role is None


# --------------------------------------------------------------------------------------- two daemons
def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def refused(d: Daemon, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await call(d, method, **params)
    return err.value


@asynccontextmanager
async def two(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        yield host, guest


async def test_profiles_are_private_files_and_are_copied_into_new_rooms(tmp_path: Path) -> None:
    async with two(tmp_path) as (host, guest):
        wrote = await call(host, "context.write", fields=ALICE)
        path = Path(wrote["path"])
        assert wrote["profile"] == "default" and path == tmp_path / "host" / "profiles" / "default.json"
        assert mode(path) == 0o600 and mode(path.parent) == 0o700
        assert json.loads(path.read_text()) == wrote["context"]

        created = await call(host, "room.create", topic="price", fields=["price"])
        room_id = created["room_id"]
        copy = tmp_path / "host" / "rooms" / room_id / "owner_context.json"
        assert mode(copy) == 0o600 and json.loads(copy.read_text()) == wrote["context"]
        assert created["lifecycle"] == "joining"  # context written, the peer not there yet (SPEC §6)
        assert created["owner"]["role"] == "Payment infrastructure lead"
        assert "private_facts" not in created["owner"] and "48,500" not in json.dumps(created)

        # The room's copy is its own: changing the profile later does not change the room.
        await call(host, "context.write", fields={"role": "CFO"})
        shown = await call(host, "context.show", room_id=room_id)
        assert shown["context"]["role"] == "Payment infrastructure lead"
        assert shown["context"]["private_facts"] == ["our ceiling is 48,500 EUR"]
        assert "never" in shown["private_facts_notice"]
        # ... and it can be rewritten on its own.
        await call(host, "context.write", room_id=room_id, fields={"goals": ["Close by Friday"]})
        status = await call(host, "room.status", room_id=room_id)
        assert status["owner"]["goals"] == ["Close by Friday"]
        assert host.contexts.private_facts(room_id) == ["our ceiling is 48,500 EUR"]
        assert host.contexts.confirmed_facts(room_id) == {
            "f1": "We serve 200k webhook consumers",
            "f2": "Our API is REST",
        }

        await call(guest, "context.write", profile="bob-work", fields={"owner_name": "bob", "role": "Backend"})
        joined = await call(guest, "room.join", join_url=created["join_url"], context="bob-work")
        assert joined["lifecycle"] == "active" and joined["owner"]["owner_name"] == "bob"
        assert mode(tmp_path / "guest" / "rooms" / room_id / "owner_context.json") == 0o600
        status = await call(host, "room.status", room_id=room_id)
        assert status["lifecycle"] == "active"
        assert "bob" not in json.dumps(status) and "Backend" not in json.dumps(status)  # never the peer's


async def test_a_room_without_context_stays_invited_and_can_be_given_one(tmp_path: Path) -> None:
    async with two(tmp_path) as (host, _):
        created = await call(host, "room.create", topic="price", fields=["price"])
        room_id = created["room_id"]
        assert created["lifecycle"] == "invited" and created["owner"] is None
        err = await refused(host, "context.show", room_id=room_id)
        assert err.code == "no_context" and f"context write --room {room_id}" in err.message
        assert host.contexts.private_facts(room_id) == []
        await call(host, "context.write", room_id=room_id, fields={"owner_name": "alice"})
        assert (await call(host, "room.status", room_id=room_id))["lifecycle"] == "joining"


async def test_bad_requests_change_nothing(tmp_path: Path) -> None:
    async with two(tmp_path) as (host, _):
        state = tmp_path / "host"
        err = await refused(host, "context.write", fields={"role": "CFO"})
        assert err.code == "bad_value" and "owner_name is required" in err.message
        assert not (state / "profiles" / "default.json").exists()
        await call(host, "context.write", fields=ALICE)
        before = (state / "profiles" / "default.json").read_bytes()
        for params, code in (
            ({"fields": {"goals": ["ok", ""]}}, "bad_value"),
            ({"fields": {"owner_name": "a", "nope": 1}}, "bad_value"),
            ({"fields": ["owner_name"]}, "invalid_params"),
            ({}, "invalid_params"),
            ({"fields": ALICE, "profile": "../etc"}, "bad_value"),
            ({"fields": ALICE, "profile": "Work"}, "bad_value"),
            ({"fields": ALICE, "profile": "a", "room_id": "cr_00"}, "invalid_params"),
            ({"fields": ALICE, "room_id": "cr_0123456789abcdef"}, "unknown_room"),
            ({"fields": ALICE, "replace": "yes"}, "invalid_params"),
        ):
            assert (await refused(host, "context.write", **params)).code == code, params
        assert (state / "profiles" / "default.json").read_bytes() == before
        assert (await refused(host, "context.show", profile="nobody")).code == "no_context"
        err = await refused(host, "room.create", topic="t", fields=["price"], context="nobody")
        assert err.code == "no_context" and "clawroom context write --profile nobody" in err.message
        assert len(host.rooms) == 0


async def test_malformed_files_are_clear_errors_and_change_nothing(tmp_path: Path) -> None:
    async with two(tmp_path) as (host, _):
        profiles = tmp_path / "host" / "profiles"
        profiles.mkdir(mode=0o700)
        for name, content in (
            ("default", b'{"owner_name": "alice", "role": 7}'),
            ("broken", b'{"owner_name": "alice",'),
            ("latin", b'{"owner_name": "\xe9"}'),
        ):
            (profiles / f"{name}.json").write_bytes(content)
        for name, says in (("default", "role must be a text"), ("broken", "not JSON"), ("latin", "not UTF-8")):
            err = await refused(host, "context.show", profile=name)
            assert err.code == "bad_context" and says in err.message and f"{name}.json" in err.message
            err = await refused(host, "context.write", profile=name, fields={"goals": ["g"]})
            assert err.code == "bad_context"
        # The default profile is malformed: a room is not created without it (nor with a wrong one).
        err = await refused(host, "room.create", topic="t", fields=["price"])
        assert err.code == "bad_context" and len(host.rooms) == 0
        assert (profiles / "default.json").read_bytes() == b'{"owner_name": "alice", "role": 7}'
        # --replace writes a good one over it.
        await call(host, "context.write", fields={"owner_name": "alice"}, replace=True)
        assert (await call(host, "context.show"))["context"]["owner_name"] == "alice"


async def test_a_room_file_spoiled_while_stopped_fails_closed_after_the_restart(tmp_path: Path) -> None:
    me = Identity.from_seed(bytes(32))
    async with open_daemon(tmp_path / "host", identity=me) as host:
        await call(host, "context.write", fields=ALICE)
        room_id = (await call(host, "room.create", topic="t", fields=["price"]))["room_id"]
    copy = tmp_path / "host" / "rooms" / room_id / "owner_context.json"
    copy.write_text('{"owner_name": "alice", "private_facts": "not a list"}')
    async with open_daemon(tmp_path / "host", identity=me) as host:
        err = await refused(host, "context.show", room_id=room_id)
        assert err.code == "bad_context" and "private_facts must be a list" in err.message
        with pytest.raises(ApiError) as raised:  # a guard asking for the private facts gets no silent []
            host.contexts.private_facts(room_id)
        assert raised.value.code == "bad_context"
        await call(host, "context.write", room_id=room_id, fields=ALICE, replace=True)
        assert host.contexts.private_facts(room_id) == ["our ceiling is 48,500 EUR"]
    async with open_daemon(tmp_path / "host", identity=me) as host:  # and the mended copy is read at the next start
        assert (await call(host, "room.status", room_id=room_id))["owner"]["owner_name"] == "alice"


AGENT = """
import json, sys, pathlib
doc = json.load(sys.stdin)
pathlib.Path(sys.argv[1]).write_text(json.dumps(doc))
print(json.dumps({"action": "wait"}))
"""


async def test_the_agent_reads_its_owners_context_on_stdin(tmp_path: Path) -> None:
    agent, seen = tmp_path / "agent.py", tmp_path / "doc.json"
    agent.write_text(AGENT)
    async with two(tmp_path) as (host, guest):
        await call(guest, "context.write", fields=ALICE)
        created = await call(host, "room.create", topic="price", fields=["price"], first="guest")
        await call(
            guest, "room.join", join_url=created["join_url"], agent_command=[sys.executable, str(agent), str(seen)]
        )
        with trio.fail_after(30):
            while not seen.exists():
                await trio.sleep(0.02)
        doc = json.loads(seen.read_text())
    owner = doc["owner"]
    assert owner["owner_name"] == "alice" and owner["private_facts"] == ["our ceiling is 48,500 EUR"]
    assert "never to be shared" in owner["private_facts_notice"]
    assert owner["confirmed_facts"][0] == {"id": "f1", "text": "We serve 200k webhook consumers"}
    assert owner["limits"] == ["price<=52000"]
    assert doc["room"]["owner"]["constraints"] == ["Must keep backward compat for 90d"]


async def test_a_join_that_fails_leaves_no_copy_behind(tmp_path: Path) -> None:
    async with two(tmp_path) as (host, guest):
        await call(guest, "context.write", fields=ALICE)
        created = await call(host, "room.create", topic="price", fields=["price"])
        url = JoinURL.parse(created["join_url"])
        nowhere = replace(url, addrs=(("127.0.0.1", free_port()),)).format()  # nothing listens there
        err = await refused(guest, "room.join", join_url=nowhere, timeout_s=5)
        assert err.code == "peer_unreachable"
        assert not (tmp_path / "guest" / "rooms" / url.room_id).exists() and len(guest.rooms) == 0


def test_the_context_methods_and_codes_are_in_the_spec() -> None:
    spec = (Path(__file__).resolve().parent.parent / "protocol" / "SPEC.md").read_text()
    for code in ("bad_context", "no_context"):
        assert f"| `{code}`" in spec and str(ERROR_CODES[code]) in spec
    for method in ("context.write", "context.show"):
        assert f"| `{method}` |" in spec
    assert "`context`? (an owner-context profile" in spec and "`private_facts_notice`" in spec
