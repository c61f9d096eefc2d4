"""The LLM agent driver (`python -m clawroomd.llm`) as each daemon's agent command, in real rooms between
two in-process daemons, against `llm_server.ModelServer`: a small OpenAI-compatible server on 127.0.0.1
started by each test, answering with canned model replies (no model runs here). The driver is a real
process speaking real HTTP; only the model's words are scripted."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from llm_server import Canned, ModelServer, action

from clawroomd.daemon.wiring import Daemon
from clawroomd.llm.command import llm_agent_argv
from clawroomd.testing.inprocess import call, open_daemon, until

pytestmark = pytest.mark.slow  # real processes: the daemons' agent runs, the driver's HTTP
CEILING = "Our ceiling is 48,500 EUR"
KEY_ENV = "CLAWROOM_TEST_LLM_KEY"  # unset in these tests: no key is sent


def argv(server: ModelServer, model: str, *extra: str) -> list[str]:
    return llm_agent_argv(model, base_url=server.base_url, key_env=KEY_ENV, extra=list(extra))


async def open_room(host: Daemon, guest: Daemon, server: ModelServer, **create: Any) -> str:
    params: dict[str, Any] = {"topic": "Payments v3", "fields": ["price", "retry_policy"], **create}
    made = await call(host, "room.create", agent_command=argv(server, "host-model"), **params)
    await call(guest, "room.join", join_url=made["join_url"], agent_command=argv(server, "guest-model"))
    return str(made["room_id"])


def messages(d: Daemon, rid: str) -> list[dict[str, Any]]:
    return [e.to_json() for e in d.rooms[rid].core.log if e.kind == "message"]


async def test_both_sides_driven_by_the_llm_driver_reach_agreement(tmp_path: Path) -> None:
    host_script = [
        action(
            text="Opening offer.",
            moves=[
                {"op": "propose", "field": "price", "value": "100 EUR"},
                {"op": "propose", "field": "retry_policy", "value": "fixed 30s x5"},
            ],
        ),
        # plain-JSON habits a model has: a fence around the object, the accept carrying the value it saw
        f"```json\n{action(text='Deal.', moves=[{'op': 'accept', 'field': 'retry_policy', 'value': '30s x3'}])}\n```",
        action("close"),  # countersigns the guest's close
    ]
    guest_script = [
        action(
            text="Price fine; fewer retries.",
            moves=[
                {"op": "accept", "field": "price"},
                {"op": "propose", "field": "retry_policy", "value": "30s x3"},
            ],
        ),
        action("close"),
    ]
    with ModelServer({"host-model": host_script, "guest-model": guest_script}) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            rid = await open_room(host, guest, server, goal="Agree the v3 contract", max_turns=6)
            await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed, timeout=60)
            for d in (host, guest):
                result = await call(d, "room.result", room_id=rid)
                assert result["status"] == "agreement_reached"
                assert result["outcomes"] == {"price": "100 EUR", "retry_policy": "30s x3"}
            assert [m["author"] for m in messages(host, rid)] == ["host", "guest", "host"]
    assert len(server.requests) == 5  # one model call per turn: nothing asked twice
    first = server.for_model("host-model")[0]
    schema = first.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["moves"]["items"]["properties"]["field"]["enum"] == ["price", "retry_policy"]
    assert "Agree the v3 contract" in first.prompt and "#1 they: joined" in first.prompt
    # the guest's model saw the host's message and its proposals, marked as the other side's
    guest_first = server.for_model("guest-model")[0].prompt
    assert '"Opening offer."' in guest_first and 'theirs (you may accept it) "100 EUR"' in guest_first
    assert "authorization" not in first.headers  # no key in the environment: none sent


async def test_a_malformed_reply_is_told_to_the_model_and_the_next_one_is_used(tmp_path: Path) -> None:
    host_script = [
        "Sure! I would offer a price of 100.",  # no JSON at all
        action(text="Offer.", moves=[{"op": "propose", "field": "cost", "value": "100"}]),  # no such field
        action(text="Offer.", moves=[{"op": "propose", "field": "price", "value": "100"}]),
    ]
    with ModelServer({"host-model": host_script, "guest-model": [Canned(delay=60)]}) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            rid = await open_room(host, guest, server)
            await until(lambda: len(messages(host, rid)) == 1, timeout=30)
            assert messages(host, rid)[0]["body"]["moves"] == [{"op": "propose", "field": "price", "value": "100"}]
            calls = server.for_model("host-model")
            assert len(calls) == 3
            second, third = calls[1].body["messages"], calls[2].body["messages"]
            assert second[-2] == {"role": "assistant", "content": "Sure! I would offer a price of 100."}
            assert "not a JSON object" in second[-1]["content"]
            assert "'cost' is not a field of this room (fields: price, retry_policy)" in third[-1]["content"]


async def test_a_leak_blocked_reply_is_fed_back_and_the_model_corrects_it(tmp_path: Path) -> None:
    host_script = [
        action(text="Our ceiling is 48.5k.", moves=[{"op": "propose", "field": "price", "value": "48500 EUR"}]),
        action(text="We can do 45,000 EUR.", moves=[{"op": "propose", "field": "price", "value": "45000 EUR"}]),
    ]
    with ModelServer({"host-model": host_script, "guest-model": [Canned(delay=60)]}) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            await call(host, "context.write", fields={"owner_name": "alice", "private_facts": [CEILING]})
            rid = await open_room(host, guest, server)
            await until(lambda: len(messages(host, rid)) == 1, timeout=30)
            said = messages(host, rid)[0]["body"]
            assert said["moves"] == [{"op": "propose", "field": "price", "value": "45000 EUR"}]
            for e in guest.rooms[rid].core.log:
                assert "48" not in str(e.to_json()["body"])
    first, second = server.for_model("host-model")
    assert "NEVER TO BE SHARED" in first.prompt and CEILING in first.prompt  # told to the local model only
    assert "REFUSED" not in first.prompt
    # the daemon's refusal reached the model on the rerun: its code, its reason and the refused reply
    assert "YOUR LAST REPLY WAS REFUSED by the daemon and nothing was sent: leak_blocked:" in second.prompt
    assert '"value": "48500 EUR"' in second.prompt


async def test_refusals_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    leak = action(text="ceiling 48500", moves=[{"op": "propose", "field": "price", "value": "48500"}])
    with ModelServer({"host-model": [leak] * 10, "guest-model": [Canned(delay=60)]}) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            await call(host, "context.write", fields={"owner_name": "alice", "private_facts": [CEILING]})
            rid = await open_room(host, guest, server)
            await until(lambda: len(server.for_model("host-model")) == 3, timeout=30)
            await trio.sleep(3)  # no fourth run on the same state
            assert len(server.for_model("host-model")) == 3
            assert messages(host, rid) == []
            attempts = [r.prompt.count("REFUSED") for r in server.for_model("host-model")]
            assert attempts == [0, 1, 1]


async def test_a_model_slower_than_the_turn_is_given_up_before_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clawroomd")
    with ModelServer({"host-model": [Canned(content=action("wait"), delay=60)] * 3}) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            began = time.time()  # the host's turn begins a moment later, once the guest has joined
            rid = await open_room(host, guest, server, turn_timeout_s=5)
            await until(lambda: host.rooms[rid].closed, timeout=30)
            result = await call(host, "room.result", room_id=rid)
            assert result["status"] == "timeout" and "turn deadline" in result["reason"]
            assert (await call(host, "daemon.info"))["peer_id"]  # the daemon carries on
    gave_up = [r for r in caplog.records if "did not answer within" in r.getMessage()]
    assert gave_up, [r.getMessage() for r in caplog.records]
    assert "host-model" in gave_up[0].getMessage() and "giving up this turn" in gave_up[0].getMessage()
    assert gave_up[0].created - began < 5.0  # before the 5 s turn deadline, which then closed the room
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere


async def test_a_server_that_rejects_response_format_gets_plain_json(tmp_path: Path) -> None:
    offer = action(text="Offer.", moves=[{"op": "propose", "field": "price", "value": "100"}])
    counter = "Here is my move:\n" + action(text="Counter.", moves=[{"op": "propose", "field": "price", "value": "90"}])
    with ModelServer({"host-model": [offer], "guest-model": [counter, Canned(delay=60)]}, reject_schema=True) as server:
        async with open_daemon(tmp_path / "h") as host, open_daemon(tmp_path / "g") as guest:
            rid = await open_room(host, guest, server)
            await until(lambda: len(messages(host, rid)) == 2, timeout=30)
    host_calls = server.for_model("host-model")
    # The host's first turn: refused with the schema, asked again without. (Its next turn may already have
    # begun when the daemons stop: each turn is a new driver run, which tries the schema again.)
    assert ["response_format" in r.body for r in host_calls[:2]] == [True, False]
    assert "exactly these keys" in host_calls[1].body["messages"][0]["content"]  # the plain instructions
    assert messages(host, rid)[1]["body"]["moves"] == [{"op": "propose", "field": "price", "value": "90"}]


async def test_agent_env_is_checked_and_its_values_never_echoed(tmp_path: Path) -> None:
    secret = "sk-never-echo-0123456789"
    async with open_daemon(tmp_path / "h") as host:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"PATH": secret}, "bad_value"),
            ({"MY KEY": secret}, "bad_value"),
            ({"OPENAI_API_KEY": 5}, "bad_value"),
            ({"OPENAI_API_KEY": ""}, "bad_value"),
        ]
        for env, code in bad:
            with pytest.raises(Exception) as info:
                await call(host, "room.create", topic="t", fields=["price"], agent_command=["true"], agent_env=env)
            assert getattr(info.value, "code", None) == code and secret not in str(info.value)
        with pytest.raises(Exception) as info:  # a key with no agent to give it to
            await call(host, "room.create", topic="t", fields=["price"], agent_env={"OPENAI_API_KEY": secret})
        assert getattr(info.value, "code", None) == "invalid_params"
        assert (await call(host, "room.list"))["rooms"] == []  # nothing created by any of these
