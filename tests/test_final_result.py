"""Results on close (SPEC §8.1), with two real daemons over loopback: both sides write final_result.json
(shared part byte-identical, schema-valid, 0600) and summary.md; every way a room ends gets a result; a
closed room that lost its files gets them back on restart; `verify` checks them offline and names the
place of any change."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from clawroomd.core.final_result import FORMAT, VerifyError, canonical, verify
from clawroomd.core.identity import Identity
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.inprocess import call, open_daemon, open_room, until

SCHEMA = json.loads((Path(__file__).parent.parent / "protocol" / "final_result.schema.json").read_text())


def files(daemon: Daemon, room_id: str) -> tuple[Path, Path]:
    folder = daemon.store.room_dir(room_id)
    return folder / "final_result.json", folder / "summary.md"


async def written(daemon: Daemon, room_id: str) -> dict[str, Any]:
    """The room's result once both files are there: checked against the schema, the modes and `verify`."""
    result, summary = files(daemon, room_id)
    await until(lambda: result.exists() and summary.exists())
    for path in (result, summary):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc: dict[str, Any] = json.loads(result.read_bytes())
    jsonschema.validate(doc, SCHEMA)
    assert doc["format"] == FORMAT and doc["local"]["role"] == daemon.rooms[room_id].role
    transcript = daemon.store.room_dir(room_id).joinpath("transcript.jsonl").read_bytes()
    verify(result.read_bytes(), transcript)
    return doc


async def agree(host: Daemon, guest: Daemon, room_id: str) -> None:
    await call(host, "room.send", room_id=room_id, text="100?", propose={"price": "100"})
    await until(lambda: guest.rooms[room_id].our_turn)
    await call(guest, "room.send", room_id=room_id, text="ok", accept=["price"], propose={"date": "June 3"})
    await until(lambda: host.rooms[room_id].our_turn)
    await call(host, "room.send", room_id=room_id, text="fine", accept=["date"])
    await until(lambda: guest.rooms[room_id].our_turn)
    await call(guest, "room.close", room_id=room_id)
    await until(lambda: host.rooms[room_id].our_turn)
    await call(host, "room.close", room_id=room_id)
    await until(lambda: host.rooms[room_id].closed and guest.rooms[room_id].closed)


async def test_an_agreed_room_leaves_both_owners_a_result_with_the_same_signed_part(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        await call(
            host,
            "context.write",
            fields={
                "owner_name": "alice",
                "goals": ["a fair price"],
                "constraints": ["pay in June"],
                "limits": ["price<=150"],
            },
        )
        rid = await open_room(host, guest, fields=["price", "date"], max_turns=6)
        await call(host, "room.summary", room_id=rid, text="We got the price we wanted.")
        await agree(host, guest, rid)
        docs = [await written(d, rid) for d in (host, guest)]
        assert canonical(docs[0]["shared"]) == canonical(docs[1]["shared"])
        shared = docs[0]["shared"]
        assert shared["status"] == "agreement_reached" and shared["agreed"] == {"price": "100", "date": "June 3"}
        price = shared["fields"][0]
        assert price["proposed"] == {"by": "host", "seq": 2, "refs": []}
        assert price["accepted"] == {"by": "guest", "seq": 3, "refs": []}
        assert [s["kind"] for s in shared["signed_close"]] == ["close_proposed", "close_accepted", "room_closed"]
        assert [s["author"] for s in shared["signed_close"]] == ["guest", "host", "host"]
        assert shared["head"] == host.rooms[rid].state.head.hex() and shared["turns"] == 3
        assert [p["role"] for p in shared["participants"]] == ["host", "guest"]
        assert shared["participants"][1]["label"] == "g"
        text = files(host, rid)[1].read_text()
        assert text.index("We got the price we wanted.") < text.index("What the daemon recorded")
        assert "**price** = 100" in text and "within your limit `price<=150`" in text
        assert "a fair price" in text and "pay in June" in text
        assert "We got the price" not in files(guest, rid)[1].read_text()  # the summary is ours alone
        assert "price<=150" not in files(guest, rid)[1].read_text()


@pytest.mark.parametrize("how", ["cancel", "turn_limit"])
async def test_a_room_ending_without_agreement_still_gets_a_result(tmp_path: Path, how: str) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, max_turns=2)
        await call(host, "room.send", room_id=rid, text="100?", propose={"price": "100"})
        await until(lambda: guest.rooms[rid].our_turn)
        if how == "cancel":
            await call(guest, "room.cancel", room_id=rid, reason="changed my mind")
        else:
            await call(guest, "room.send", room_id=rid, text="no", propose={"price": "80"})
        await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed)
        docs = [await written(d, rid) for d in (host, guest)]
        assert canonical(docs[0]["shared"]) == canonical(docs[1]["shared"])
        shared = docs[0]["shared"]
        assert shared["status"] == ("cancelled" if how == "cancel" else "turn_limit_reached")
        assert shared["agreed"] == {} and shared["unresolved"] == ["price"]
        standing = shared["fields"][0]["standing"]
        assert standing["host"]["value"] == "100" and standing["host"]["seq"] == 2
        if how == "turn_limit":
            assert standing["guest"] == {"value": "80", "by": "guest", "seq": 3, "refs": []}
        assert "**price**: " in files(guest, rid)[1].read_text()


async def test_a_closed_room_that_lost_its_files_gets_them_back_on_restart(tmp_path: Path) -> None:
    host_id = Identity.from_seed(os.urandom(32))
    async with open_daemon(tmp_path / "host", identity=host_id) as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, max_turns=4)
        await call(host, "room.cancel", room_id=rid)
        await until(lambda: guest.rooms[rid].closed)
        before = canonical((await written(host, rid))["shared"])
        for path in files(host, rid):
            path.unlink()  # as if the daemon died between the close and the write
    async with open_daemon(tmp_path / "host", identity=host_id) as host:
        assert canonical((await written(host, rid))["shared"]) == before


async def test_a_guest_that_ends_the_room_locally_gets_an_unsigned_result_that_says_so(tmp_path: Path) -> None:
    guest_id, tuning = Identity.from_seed(os.urandom(32)), {"max_backoff": 0.3, "guest_grace": 0.2, "send_timeout": 1.0}
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest", identity=guest_id) as guest:
        rid = await open_room(host, guest, deadline_s=1.5)
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"})
        await until(lambda: guest.rooms[rid].state.seq == 2)
    async with open_daemon(tmp_path / "guest", identity=guest_id, tuning=tuning) as guest:  # the host never returns
        await until(lambda: guest.rooms[rid].closed, timeout=10)
        shared = (await written(guest, rid))["shared"]
        assert shared["status"] == "timeout" and shared["ended_locally"] is True and shared["outcome_digest"] is None
        assert shared["signed_close"] == [] and shared["event_count"] == 3
        assert shared["fields"][0]["standing"]["host"]["value"] == "100"
        assert "signed by nobody" in files(guest, rid)[1].read_text()


# ---- verify: any change fails and says where -------------------------------------------------------------


async def _closed_room(tmp_path: Path) -> tuple[bytes, bytes]:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, fields=["price", "date"], max_turns=6)
        await agree(host, guest, rid)
        await written(guest, rid)
        folder = guest.store.room_dir(rid)
        return folder.joinpath("final_result.json").read_bytes(), folder.joinpath("transcript.jsonl").read_bytes()


@pytest.fixture(scope="module")
def closed_room(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """One real room to agreement (two daemons), whose guest-side files the verify tests tamper with."""
    return trio.run(_closed_room, tmp_path_factory.mktemp("room"))


def edited(data: bytes, change: Any) -> bytes:
    doc = json.loads(data)
    change(doc)
    return canonical(doc)


def flip(b64: str, at: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_verify_passes_an_untouched_result_and_transcript(closed_room: tuple[bytes, bytes]) -> None:
    result, transcript = closed_room
    ok = verify(result, transcript)
    assert ok.status == "agreement_reached" and ok.agreed == {"price": "100", "date": "June 3"}
    assert ok.transcript_lines == ok.events == 8
    assert "close_accepted #6 signed by the host" in ok.summary()


def test_verify_ignores_the_local_part(closed_room: tuple[bytes, bytes]) -> None:
    result, _ = closed_room
    verify(edited(result, lambda d: d["local"].update(note="mine")))


def set_path(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["shared", "agreed", "price"], "99", "shared.agreed.price"),
        (["shared", "fields", 0, "value"], "99", "shared.fields[0].value"),
        (["shared", "fields", 0, "accepted", "seq"], 4, "shared.fields[0].accepted.seq"),
        (["shared", "status"], "partial_agreement", "shared.status"),
        (["shared", "outcome_digest"], "00" * 32, "shared.outcome_digest"),
        (["shared", "participants", 1, "label"], "mallory", "shared.participants[1].label"),
        (["shared", "turns"], 2, "shared.turns"),
    ],
)
def test_verify_names_a_changed_value(
    closed_room: tuple[bytes, bytes], path: list[Any], value: Any, where: str
) -> None:
    result, _ = closed_room
    with pytest.raises(VerifyError) as err:
        verify(edited(result, lambda d: set_path(d, path, value)))
    assert err.value.where == where


def test_verify_names_a_changed_signature_or_event(closed_room: tuple[bytes, bytes]) -> None:
    result, _ = closed_room
    doc = json.loads(result)
    sig = doc["shared"]["signed_close"][1]
    with pytest.raises(VerifyError) as err:  # the countersignature's last byte (inside the signature)
        verify(edited(result, lambda d: d["shared"]["signed_close"][1].update(envelope=flip(sig["envelope"], -1))))
    assert err.value.where == "shared.signed_close[1].envelope"
    with pytest.raises(VerifyError) as err:  # the same event in the full log: the signature fails there
        verify(edited(result, lambda d: set_path(d, ["shared", "events", 6], flip(d["shared"]["events"][6], -1))))
    assert err.value.where == "shared.events[6]" and "bad_signature" in err.value.message
    with pytest.raises(VerifyError) as err:  # one byte of a message's signed payload
        verify(edited(result, lambda d: set_path(d, ["shared", "events", 3], flip(d["shared"]["events"][3], 60))))
    assert err.value.where.startswith("shared.events[3]")


def test_verify_fails_on_any_changed_byte_of_the_file(closed_room: tuple[bytes, bytes]) -> None:
    result, _ = closed_room
    at = result.index(b'"topic"')
    spaced = result[:at] + b" " + result[at:]
    with pytest.raises(VerifyError) as err:
        verify(spaced)
    assert err.value.where == f"byte {at}"
    with pytest.raises(VerifyError) as err:
        verify(result.replace(b'"June 3"', b'"June 4"', 1))
    assert err.value.where.startswith("shared.")


def test_verify_names_the_changed_transcript_line(closed_room: tuple[bytes, bytes]) -> None:
    result, transcript = closed_room
    lines = transcript.splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"100?"', b'"101?"')
    with pytest.raises(VerifyError) as err:
        verify(result, b"".join(lines))
    assert err.value.where == "transcript line 3 (seq 2) body.text" and "101?" in err.value.message
    with pytest.raises(VerifyError) as err:
        verify(result, b"".join([*lines[:-1], b""]))
    assert "transcript" in err.value.where


# ---- clawroom verify: the command, offline -----------------------------------------------------------------

NO_TRIO = (
    "import sys; from clawroomd.cli.main import main; rc = main(sys.argv[1:]); "
    "assert 'trio' not in sys.modules, 'verify imported trio'; sys.exit(rc)"
)


def clawroom_verify(*args: str) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": root, "CLAWROOM_SOCKET": "/nonexistent/no-daemon.sock"}
    return subprocess.run(
        [sys.executable, "-c", NO_TRIO, "verify", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_clawroom_verify_passes_a_good_result_and_fails_a_changed_one(
    closed_room: tuple[bytes, bytes], tmp_path: Path
) -> None:
    result, transcript = closed_room
    (tmp_path / "final_result.json").write_bytes(result)
    (tmp_path / "transcript.jsonl").write_bytes(transcript)
    ok = clawroom_verify(str(tmp_path / "final_result.json"), "--transcript", str(tmp_path / "transcript.jsonl"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: room ") and "agreement_reached" in ok.stdout and ok.stdout.count("\n") == 1
    (tmp_path / "bad.json").write_bytes(edited(result, lambda d: set_path(d, ["shared", "agreed", "price"], "1")))
    bad = clawroom_verify(str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "FAILED at shared.agreed.price" in bad.stderr
    (tmp_path / "bad.jsonl").write_bytes(transcript.replace(b'"ok"', b'"OK"', 1))
    bad = clawroom_verify(str(tmp_path / "final_result.json"), "--transcript", str(tmp_path / "bad.jsonl"))
    assert bad.returncode == 1 and "FAILED at transcript line 4 (seq 3) body.text" in bad.stderr
    missing = clawroom_verify(str(tmp_path / "nothing.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
