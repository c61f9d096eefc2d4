"""`clawroom mcp` through the MCP SDK's own client (stdio_client + ClientSession, anyio on trio): the
server runs as `python -m clawroomd.cli.main mcp --socket ...` against two real daemons. The tool list and
its schemas, every tool called, a whole room with the host on MCP and the guest on the library (owner
limit, ask_owner and the owner's answer, a leak refused, moves bound to what the host saw), tool errors
that carry the daemon's codes, wait_for_my_turn running out cleanly, and no daemon at all."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

pytest.importorskip("mcp", reason="the MCP SDK is in the test extra (clawroomd[mcp])")

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

import clawroom.aio
from clawroomd.testing import DaemonProcess, daemon_pair

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TOOLS = {
    "create_room", "join_room", "list_rooms", "room_status", "room_transcript", "send_message",
    "wait_for_my_turn", "ask_owner", "owner_answers", "owner_context", "close_room", "cancel_room",
    "room_result", "write_summary",
}  # fmt: skip
READ_ONLY = {"list_rooms", "room_status", "room_transcript", "wait_for_my_turn", "owner_answers", "owner_context",
             "room_result"}  # fmt: skip


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    with daemon_pair(tmp_path_factory.mktemp("mcp")) as pair:
        yield pair


@contextlib.asynccontextmanager
async def mcp_session(socket: Path) -> AsyncIterator[ClientSession]:
    """`clawroom mcp --socket SOCKET` as an MCP client starts a server: a child process on stdio."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "clawroomd.cli.main", "mcp", "--socket", str(socket)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        with trio.fail_after(30):
            await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed: its structured result."""
    with trio.fail_after(90):
        result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content}"
    assert result.structured_content is not None
    text = result.content[0]
    assert text.type == "text" and json.loads(text.text) == result.structured_content  # the same, as text
    return result.structured_content


async def refused(session: ClientSession, tool: str, code: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must fail as an MCP tool error carrying the daemon's `code`."""
    with trio.fail_after(60):
        result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool} was not refused: {result.structured_content}"
    text = result.content[0]
    assert text.type == "text" and text.text.startswith(f"{code}: "), text
    assert result.structured_content is not None and result.structured_content["error"] == code
    return result.structured_content


async def test_lists_every_tool_with_its_schema(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    async with mcp_session(daemons[0].socket) as session:
        init_tools = (await session.list_tools()).tools
    by_name = {t.name: t for t in init_tools}
    assert set(by_name) == TOOLS
    for tool in init_tools:
        assert tool.description and len(tool.description) > 60, tool.name
        schema = tool.input_schema
        assert schema["type"] == "object"
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
        if tool.name not in {"create_room", "join_room", "list_rooms"}:
            assert "room_id" in schema["required"] and schema["properties"]["room_id"]["pattern"] == "^cr_[0-9a-f]+$"
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.annotations is not None and tool.annotations.read_only_hint == (tool.name in READ_ONLY)
    send = by_name["send_message"].input_schema["properties"]
    assert set(send) == {"room_id", "text", "propose", "accept", "reject", "refs", "sid", "expect_seq"}
    assert send["propose"]["anyOf"][0] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert set(by_name["create_room"].input_schema["required"]) == {"topic", "fields"}
    wait = by_name["wait_for_my_turn"].input_schema["properties"]["timeout_s"]
    assert wait["default"] == 45 and wait["exclusiveMinimum"] == 0
    assert by_name["cancel_room"].annotations is not None and by_name["cancel_room"].annotations.destructive_hint


async def test_whole_room_host_on_mcp(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = daemons
    a.call("context.write", profile="alice", fields={
        "owner_name": "alice", "role": "Payment infrastructure lead", "goals": ["Align on Payments v3"],
        "confirmed_facts": ["We serve 200k webhook consumers"], "private_facts": ["Our ceiling is 48,500 EUR"],
        "limits": ["price<=52000"],
    })  # fmt: skip
    async with mcp_session(a.socket) as host:
        view = await call(host, "create_room", topic="Q2 API contract", goal="Agree on Payments v3",
                          fields=["amount_format", {"name": "price", "description": "yearly, EUR"}],
                          max_turns=10, label="stripe-agent", turn_timeout_s=600, context="alice")  # fmt: skip
        room_id, url = view["room_id"], view["join_url"]
        assert view["role"] == "host" and url.startswith(f"clawroom://join/{room_id}")
        assert [f["name"] for f in view["fields"]] == ["amount_format", "price"]
        owner = await call(host, "owner_context", room_id=room_id)
        assert owner["context"]["private_facts"] == ["Our ceiling is 48,500 EUR"] and owner["private_facts_notice"]

        guest = await clawroom.aio.connect(str(b.socket)).join(url, label="backend-agent")
        card = await call(host, "wait_for_my_turn", room_id=room_id, timeout_s=30)
        assert card["your_turn"] and not card["timed_out"] and card["lifecycle"] == "active"

        # refusals carry the daemon's codes, and nothing is sent
        leak = await refused(host, "send_message", "leak_blocked", room_id=room_id, text="We could go to 48.5k.")
        assert leak["data"]["fact_index"] == 0
        over = await refused(host, "send_message", "needs_owner_approval", room_id=room_id,
                             propose={"price": "55000"})  # fmt: skip
        assert over["data"]["field"] == "price"
        await refused(host, "send_message", "unknown_field", room_id=room_id, propose={"nope": "1"})
        question = await call(host, "ask_owner", room_id=room_id, question="May I offer 55,000 EUR?",
                              field="price", value="55000")  # fmt: skip
        qid = question["question_id"]
        await refused(host, "send_message", "stale_state", room_id=room_id, text="Hi")  # consult_started is new
        await call(host, "room_status", room_id=room_id)
        await refused(host, "send_message", "pending_question", room_id=room_id, text="Hello")
        waiting = await call(host, "owner_answers", room_id=room_id)
        assert waiting["pending"]["question_id"] == qid and waiting["answers"] == []
        a.call("room.answer", room_id=room_id, approved=True, text="Yes, up to 55k.")  # the owner, not the agent
        card = await call(host, "wait_for_my_turn", room_id=room_id, timeout_s=30)
        assert card["your_turn"] and "host" not in card["consulting"]
        answers = await call(host, "owner_answers", room_id=room_id)
        assert answers["pending"] is None
        assert [(x["question_id"], x["approved"], x["text"]) for x in answers["answers"]] == [
            (qid, True, "Yes, up to 55k.")
        ]

        moves = {"amount_format": "minor units", "price": "55000"}
        sent = await call(host, "send_message", room_id=room_id, text="Minor units; 55,000 EUR a year.",
                          propose=moves, refs=[f"answer:{qid}"])  # fmt: skip
        first_move = sent["event"]["seq"]
        assert sent["event"]["kind"] == "message"
        out_of_turn = await refused(host, "send_message", "not_your_turn", room_id=room_id, text="again")
        assert out_of_turn["message"]

        await guest.wait_turn(timeout=30)
        await guest.send("Both fine.", accept=["amount_format", "price"])
        # the host has not looked since its own move: a move bound to that view is refused
        stale = await refused(host, "close_room", "stale_state", room_id=room_id)
        assert stale["data"]["expect_seq"] == first_move

        card = await call(host, "wait_for_my_turn", room_id=room_id, timeout_s=30)
        assert card["your_turn"] and card["agreed"] == 2
        news = await call(host, "room_transcript", room_id=room_id, after=first_move)
        assert [e["author"] for e in news["events"]] == ["guest"]
        assert news["events"][0]["body"]["text"] == "Both fine."
        await call(host, "close_room", room_id=room_id)
        await guest.wait_turn(timeout=30)
        await guest.close()

        result = await call(host, "room_result", room_id=room_id, wait=True, timeout_s=30)
        assert result["status"] == "agreement_reached"
        assert result["outcomes"] == {"amount_format": "minor units", "price": "55000"}, result["outcomes"]
        assert result["head"] == (await guest.result(timeout=30))["head"]
        written = await call(host, "write_summary", room_id=room_id, text="Agreed: minor units, 55,000 EUR.")
        assert written["written"] and "Agreed: minor units, 55,000 EUR." in Path(written["path"]).read_text()
        listed = await call(host, "list_rooms")
        row = next(r for r in listed["rooms"] if r["room_id"] == room_id)
        assert row["result"] == "agreement_reached" and row["role"] == "host"
        status = await call(host, "room_status", room_id=room_id)
        assert status["result"]["status"] == "agreement_reached" and status["lifecycle"] == "closed"
        closed = await call(host, "wait_for_my_turn", room_id=room_id, timeout_s=5)  # returns at once
        assert not closed["your_turn"] and closed["result"] is not None and not closed["timed_out"]
        await refused(host, "send_message", "room_closed", room_id=room_id, text="late")


async def test_guest_on_mcp_waits_out_then_cancels(daemons: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = daemons
    host = await clawroom.aio.connect(str(a.socket)).create("nobody moves", ["x"], turn_timeout=600)
    assert host.join_url
    async with mcp_session(b.socket) as guest:
        joined = await call(guest, "join_room", join_url=host.join_url, label="backend-agent", timeout_s=20)
        assert joined["role"] == "guest" and joined["room_id"] == host.id
        began = trio.current_time()
        card = await call(guest, "wait_for_my_turn", room_id=host.id, timeout_s=1.5)
        waited = trio.current_time() - began
        assert card["timed_out"] and not card["your_turn"] and card["result"] is None
        assert 1.4 <= waited < 15, waited
        await refused(guest, "send_message", "not_your_turn", room_id=host.id, text="me first")
        await refused(guest, "room_result", "not_ready", room_id=host.id)
        await refused(guest, "room_status", "unknown_room", room_id="cr_0123456789abcdef")
        await call(guest, "cancel_room", room_id=host.id, reason="test over")
        result = await call(guest, "room_result", room_id=host.id, wait=True, timeout_s=30)
        assert result["status"] == "cancelled"
    assert (await host.result(timeout=30))["status"] == "cancelled"


async def test_no_daemon_is_a_tool_error_that_says_how_to_start_one(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    async with mcp_session(missing) as session:
        assert {t.name for t in (await session.list_tools()).tools} == TOOLS  # the server itself runs
        err = await refused(session, "list_rooms", "daemon_not_running")
    assert str(missing) in err["message"] and "clawroomd &" in err["message"]
    assert "clawroom mcp --socket" in err["message"]


def test_without_the_sdk_the_command_says_what_to_install() -> None:
    # The SDK is installed here, so its absence is simulated: sys.modules["mcp"] = None blocks the import.
    code = "import sys; sys.modules['mcp'] = None; from clawroomd.cli.main import main; sys.exit(main(['mcp']))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and run.stdout == ""
    assert "pip install 'clawroomd[mcp]'" in run.stderr


def test_the_rest_of_the_cli_does_not_import_the_sdk() -> None:
    code = (
        "import sys; from clawroomd.cli import commands, parser; parser.build_parser(); "
        "bad = [m for m in ('mcp', 'pydantic', 'anyio') if m in sys.modules]; assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
