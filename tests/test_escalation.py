"""Escalation, authority limits and provenance (issue 9 items 3-5): two real daemons in one trio run
(loopback link, SQLite stores, real files); every plaintext frame between them is captured before
encryption, so the tests can say what the peer saw: only consult_started / consult_ended."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.daemon.errors import ApiError
from clawroomd.testing.inprocess import FAST_LINKS, call, open_daemon, open_room, until

QUESTION = "May we go to 52000 for the blue widgets?"


async def refused(daemon: Any, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await call(daemon, method, **params)
    return err.value


@pytest.fixture
def frames(wire_frames: list[bytes]) -> list[bytes]:
    return wire_frames


def kinds(daemon: Any, room_id: str) -> list[str]:
    return [e.body.kind for e in daemon.rooms[room_id].core.log]


async def test_owner_approves_then_the_accept_above_the_limit_goes_through(tmp_path: Path, frames: list[bytes]) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        await call(guest, "context.write", room_id=room_id, fields={"owner_name": "bob", "limits": ["price<=50000"]})
        await call(host, "room.send", room_id=room_id, text="offer", propose={"price": "52,000 EUR"})
        await until(lambda: guest.rooms[room_id].state.seq == host.rooms[room_id].state.seq)
        err = await refused(guest, "room.send", room_id=room_id, accept=["price"])
        assert err.code == "needs_owner_approval" and err.data["limit"] == "price<=50000"
        seq = guest.rooms[room_id].state.seq

        asked = await call(guest, "room.ask_owner", room_id=room_id, question=QUESTION,
                           options=["yes", "no"], field="price", value="52,000 EUR")  # fmt: skip
        path = guest.store.room_dir(room_id) / "pending_question.json"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(path.read_text())["question"] == QUESTION
        await until(lambda: "guest" in host.rooms[room_id].state.consulting)
        inbox = await call(guest, "owner.inbox")
        assert [q["question_id"] for q in inbox["questions"]] == [asked["question_id"]]
        assert (await call(host, "owner.inbox"))["questions"] == []
        # while it is pending, this side cannot send or close; reading works
        err = await refused(guest, "room.send", room_id=room_id, text="hm")
        assert err.code == "pending_question" and err.data["question_id"] == asked["question_id"]
        assert (await refused(guest, "room.close", room_id=room_id)).code == "pending_question"
        await call(guest, "room.status", room_id=room_id)

        answer = await call(guest, "room.answer", room_id=room_id, approved=True, text="ok, but no higher")
        assert answer["approved"] is True and not path.exists()
        await until(lambda: not host.rooms[room_id].state.consulting)
        assert (await refused(guest, "room.answer", room_id=room_id, approved=False)).code == "no_question"
        stored = json.loads((guest.store.room_dir(room_id) / "answers.json").read_text())
        assert [a["question_id"] for a in stored] == [asked["question_id"]]

        # the accept cites the approving answer: it goes through, and the ref (an id only) reaches the peer
        cite = [f"answer:{asked['question_id']}"]
        sent = await call(guest, "room.send", room_id=room_id, expect_seq=seq + 2,
                          moves=[{"op": "accept", "field": "price", "refs": cite}])  # fmt: skip
        assert sent["event"]["body"]["moves"][0]["refs"] == [f"answer:{asked['question_id']}"]
        await until(lambda: host.rooms[room_id].state.agreed.get("price") == "52,000 EUR")
        assert kinds(host, room_id)[-3:] == ["consult_started", "consult_ended", "message"]
    wire = b"".join(frames)
    assert b"consult_started" in wire and b"52,000 EUR" in wire  # the capture saw the room
    for secret in (QUESTION.encode(), b"ok, but no higher", b"price<=50000", b"blue widgets"):
        assert secret not in wire


async def test_owner_rejects_and_the_room_goes_on(tmp_path: Path, frames: list[bytes]) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        await call(host, "context.write", room_id=room_id, fields={"owner_name": "al", "limits": ["price>=40000"]})
        asked = await call(host, "room.ask_owner", room_id=room_id, question="Can we go below 40k?",
                           field="price", value="38000")  # fmt: skip
        await until(lambda: "host" in guest.rooms[room_id].state.consulting)
        answer = await call(host, "room.answer", room_id=room_id, approved=False, text="no")
        assert answer["approved"] is False
        await until(lambda: not guest.rooms[room_id].state.consulting)
        err = await refused(host, "room.send", room_id=room_id,
                            moves=[{"op": "propose", "field": "price", "value": "38000",
                                    "refs": [f"answer:{asked['question_id']}"]}])  # fmt: skip
        assert err.code == "needs_owner_approval"
        await call(host, "room.send", room_id=room_id, text="We hold at 41000.", propose={"price": "41000"})
        await until(lambda: guest.rooms[room_id].state.seq == host.rooms[room_id].state.seq)
        assert guest.rooms[room_id].state.phase == "active"
    assert b"Can we go below 40k?" not in b"".join(frames)


async def test_an_unanswered_question_expires_as_a_rejection(tmp_path: Path) -> None:
    tuning = {**FAST_LINKS, "question_timeout": 0.5}
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest", tuning=tuning) as guest:
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        asked = await call(guest, "room.ask_owner", room_id=room_id, question="anything?")
        assert asked["expires_at"] - asked["asked_at"] == 500
        await until(lambda: "guest" in host.rooms[room_id].state.consulting)
        await until(lambda: not host.rooms[room_id].state.consulting)
        assert kinds(host, room_id)[-2:] == ["consult_started", "consult_ended"]
        assert host.rooms[room_id].state.phase == "active"  # the room goes on
        err = await refused(guest, "room.answer", room_id=room_id, approved=True)
        assert err.code == "no_question" and "expired" in err.message
        stored = json.loads((guest.store.room_dir(room_id) / "answers.json").read_text())
        assert stored[0]["expired"] is True and stored[0]["approved"] is False
        assert (await call(guest, "owner.inbox"))["questions"] == []


async def test_the_expiry_is_shorter_than_the_rooms_answer_timeout(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"], answer_timeout_s=1)
        asked = await call(host, "room.ask_owner", room_id=room_id, question="?")
        assert asked["expires_at"] - asked["asked_at"] == 800
        await until(lambda: "host" in guest.rooms[room_id].state.consulting)
        await until(lambda: not guest.rooms[room_id].state.consulting)
        assert host.rooms[room_id].state.phase == "active"  # not ended by the answer timeout


async def test_bad_questions_and_answers_change_nothing(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"])
        seq = host.rooms[room_id].state.seq
        assert (await refused(host, "room.ask_owner", room_id=room_id, question="  ")).code == "bad_value"
        assert (await refused(host, "room.ask_owner", room_id=room_id)).code == "invalid_params"
        err = await refused(host, "room.ask_owner", room_id=room_id, question="?", field="colour")
        assert err.code == "unknown_field"
        assert (await refused(host, "room.answer", room_id=room_id, approved=True)).code == "no_question"
        assert host.rooms[room_id].state.seq == seq
        assert not (host.store.room_dir(room_id) / "pending_question.json").exists()
        await call(host, "room.ask_owner", room_id=room_id, question="first?")
        err = await refused(host, "room.ask_owner", room_id=room_id, question="second?")
        assert err.code == "pending_question"


async def test_fabricated_refs_are_refused(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        await call(host, "context.write", room_id=room_id,
                   fields={"owner_name": "al", "confirmed_facts": ["list price is 45000"]})  # fmt: skip
        seq = host.rooms[room_id].state.seq
        for ref in ("fact:f9", "answer:q_0123456789abcdef", "event:999", "event:0", "receipt:1", "fact"):
            move = {"op": "propose", "field": "price", "value": "45000", "refs": [ref]}
            err = await refused(host, "room.send", room_id=room_id, moves=[move])
            assert err.code == "bad_provenance" and err.data["ref"] == ref, ref
        assert host.rooms[room_id].state.seq == seq
        await call(host, "room.send", room_id=room_id,
                   moves=[{"op": "propose", "field": "price", "value": "45000", "refs": ["fact:f1"]}])  # fmt: skip
        await until(lambda: guest.rooms[room_id].state.seq == seq + 1)
        # the guest may cite the event that holds the value it accepts
        await call(guest, "room.send", room_id=room_id,
                   moves=[{"op": "accept", "field": "price", "refs": [f"event:{seq + 1}"]}])  # fmt: skip
        await until(lambda: host.rooms[room_id].state.agreed.get("price") == "45000")


async def test_limits_are_checked_when_written(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"])
        for bad in ("cost<=5", "price~5", "price<=cheap"):
            err = await refused(host, "context.write", room_id=room_id, fields={"owner_name": "a", "limits": [bad]})
            assert err.code == "bad_value", bad
        assert not (host.store.room_dir(room_id) / "owner_context.json").exists()
        await call(host, "context.write", profile="p", fields={"owner_name": "a", "limits": ["cost<=5"]})
        err = await refused(host, "room.create", topic="t", fields=["price"], context="p")
        assert err.code == "bad_value" and "cost" in err.message


async def test_the_owners_summary_lists_the_questions_and_their_answers(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(host, guest, fields=["price"], max_turns=10)
        await call(host, "room.ask_owner", room_id=room_id, question=QUESTION)
        await call(host, "room.answer", room_id=room_id, approved=True, text="yes, up to 52000")
        await call(host, "room.cancel", room_id=room_id, reason="done for today")
        result = await call(host, "room.result", room_id=room_id, wait_s=10)
        summary = Path(result["files"]["summary"]).read_text()
        assert f"- {QUESTION}: approved: yes, up to 52000" in summary
        guest_result = await call(guest, "room.result", room_id=room_id, wait_s=10)
        assert QUESTION not in Path(guest_result["files"]["summary"]).read_text()  # the host's own, not sent


async def test_a_joined_rooms_limit_on_a_field_it_lacks_is_reported_by_the_join(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        await call(guest, "context.write", fields={"owner_name": "bob", "limits": ["budget<=10", "price<=50000"]})
        created = await call(host, "room.create", topic="t", fields=["price"])
        view = await call(guest, "room.join", join_url=created["join_url"])
        (warning,) = view["warnings"]
        assert "'budget<=10' is on 'budget', not a field of this room (price)" in warning
        created = await call(host, "room.create", topic="t2", fields=["price", "budget"])
        assert "warnings" not in await call(guest, "room.join", join_url=created["join_url"])


RECORDER = """
import json, sys
doc = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"seq": doc["seq"], "answers": doc.get("answers")}) + "\\n")
print(json.dumps({"action": "wait"}))
"""


async def test_the_agent_gets_its_owners_answer_in_its_next_document(tmp_path: Path) -> None:
    agent, seen = tmp_path / "agent.py", tmp_path / "seen.jsonl"
    agent.write_text(RECORDER)
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(
            host, guest, fields=["price"], agent_command=[sys.executable, str(agent), str(seen)]
        )
        await until(lambda: seen.exists())
        await call(host, "room.ask_owner", room_id=room_id, question=QUESTION)
        await call(host, "room.answer", room_id=room_id, approved=False, text="no")
        await until(lambda: len(seen.read_text().splitlines()) >= 2)
        first, *_, last = [json.loads(line) for line in seen.read_text().splitlines()]
        assert not first["answers"]
        (answer,) = last["answers"]
        assert answer["question"] == QUESTION and answer["approved"] is False and answer["text"] == "no"


ASKER = """
import json, sys
doc = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"seq": doc["seq"], "answers": doc.get("answers")}) + "\\n")
if not doc.get("answers"):
    print(json.dumps({"action": "ask_owner", "question": "Go above 50000?", "field": "price", "value": "52000"}))
else:
    print(json.dumps({"text": "my owner said " + doc["answers"][0]["text"]}))
"""


async def test_an_agent_command_asks_its_owner_and_acts_on_the_answer(tmp_path: Path) -> None:
    agent, seen = tmp_path / "agent.py", tmp_path / "seen.jsonl"
    agent.write_text(ASKER)
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        room_id = await open_room(
            host, guest, fields=["price"], agent_command=[sys.executable, str(agent), str(seen)]
        )
        inbox: dict[str, Any] = {}

        async def asked() -> bool:
            inbox.update(await call(host, "owner.inbox"))
            return bool(inbox["questions"])

        for _ in range(300):
            if await asked():
                break
            await trio.sleep(0.02)
        (question,) = inbox["questions"]
        assert question["question"] == "Go above 50000?" and question["field"] == "price"
        await until(lambda: "host" in guest.rooms[room_id].state.consulting)
        await call(host, "room.answer", room_id=room_id, approved=True, text="yes")
        await until(lambda: [e.kind for e in guest.rooms[room_id].core.log][-1] == "message")
        assert guest.rooms[room_id].core.log[-1].body.text == "my owner said yes"
