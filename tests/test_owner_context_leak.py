"""Private facts never leave the machine (issue 9 item 1): a whole room between two real daemons (one trio
run, loopback links, SQLite stores, a real agent process on the guest's side), each owner with a context
holding a distinctive private fact. Every plaintext frame either daemon sends over the link is captured
before it is encrypted (a wrapper around PeerConnection's one send path: stronger than reading the
ciphertext on the wire, which would hide the fact anyway). The facts must appear in no frame, no event
envelope, no transcript.jsonl line, not in the join URL, and nowhere in the peer daemon's state dir."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import trio

from clawroomd.testing.inprocess import call, open_daemon

HOST_SECRET = "our ceiling is QX-48517-ZEBRA"
GUEST_SECRET = "walk away below ZZ-77123-OKAPI"
SECRETS = [HOST_SECRET, GUEST_SECRET, "QX-48517-ZEBRA", "ZZ-77123-OKAPI"]

AGENT = """
import json, sys, pathlib
doc = json.load(sys.stdin)
pathlib.Path(sys.argv[1]).write_text(json.dumps(doc["owner"]))
room = doc["room"]
price = next(f for f in room["fields"] if f["name"] == "price")
if room["pending_close"]:
    print(json.dumps({"action": "close"}))
elif price["proposals"].get("host"):
    said = doc["owner"]["confirmed_facts"][0]["text"]  # confirmed facts may be said
    print(json.dumps({"text": "Agreed. " + said, "moves": [{"op": "accept", "field": "price"}]}))
else:
    print(json.dumps({"action": "wait"}))
"""


def found(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data or s.encode("utf-16-le") in data]


def every_row(db: Path) -> bytes:
    """Every row of every table of a daemon's database (committed, WAL included), as bytes."""
    out = bytearray()
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"rooms", "events"} <= set(tables)
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):  # the names come from sqlite_master
                for value in row:
                    out += value if isinstance(value, bytes) else str(value).encode()
    return bytes(out)


async def test_private_facts_reach_no_event_transcript_store_or_frame(tmp_path: Path, wire_frames: list[bytes]) -> None:
    frames = wire_frames
    agent, agent_saw = tmp_path / "agent.py", tmp_path / "agent_saw.json"
    agent.write_text(AGENT)
    host_dir, guest_dir = tmp_path / "host", tmp_path / "guest"
    async with open_daemon(host_dir) as host, open_daemon(guest_dir) as guest:
        await call(host, "context.write", fields={
            "owner_name": "alice", "role": "Payments lead", "goals": ["A fair price"],
            "confirmed_facts": ["We pay in EUR"], "private_facts": [HOST_SECRET], "limits": ["price<=52000"],
        })  # fmt: skip
        await call(guest, "context.write", profile="bob", fields={
            "owner_name": "bob", "confirmed_facts": ["We need 90 days"], "private_facts": [GUEST_SECRET],
        })  # fmt: skip
        created = await call(host, "room.create", topic="price", goal="agree a price", fields=["price"])
        room_id = created["room_id"]
        assert found(created["join_url"].encode()) == []
        argv = [sys.executable, str(agent), str(agent_saw)]
        await call(guest, "room.join", join_url=created["join_url"], context="bob", agent_command=argv)
        assert host.contexts.private_facts(room_id) == [HOST_SECRET]
        assert guest.contexts.private_facts(room_id) == [GUEST_SECRET]

        with trio.fail_after(30):
            while host.rooms[room_id].state.seq < 1:
                await trio.sleep(0.01)
        await call(host, "room.send", room_id=room_id, text="We propose 50,000 EUR.", propose={"price": "50000 EUR"})
        with trio.fail_after(30):
            while "price" not in host.rooms[room_id].state.agreed:
                await trio.sleep(0.01)
        await call(host, "room.close", room_id=room_id)
        with trio.fail_after(30):
            while not (host.rooms[room_id].closed and guest.rooms[room_id].closed):
                await trio.sleep(0.01)
        result = await call(host, "room.result", room_id=room_id)
        assert result["status"] == "agreement_reached"
        events = {name: [r.envelope for r in d.store.events(room_id)] for name, d in (("host", host), ("guest", guest))}
        texts = [e["body"].get("text", "") for e in (await call(guest, "room.transcript", room_id=room_id))["events"]]

    # The test means something: the guest's agent was given its private fact, and what it may say was said.
    assert json.loads(agent_saw.read_text())["private_facts"] == [GUEST_SECRET]
    assert any(t.startswith("Agreed. We need 90 days") for t in texts)
    assert frames and any(b"Agreed. We need 90 days" in f for f in frames)  # the capture sees the plaintext

    assert [(i, found(f)) for i, f in enumerate(frames) if found(f)] == []
    for name, envelopes in events.items():
        assert len(envelopes) >= 5 and [found(e) for e in envelopes if found(e)] == [], name
    for folder in (host_dir, guest_dir):
        lines = (folder / "rooms" / room_id / "transcript.jsonl").read_bytes().splitlines()
        assert len(lines) >= 5 and [found(line) for line in lines if found(line)] == []
        assert found(every_row(folder / "clawroomd.db")) == []  # the context is kept in its files, not the db
    # Each daemon holds its own owner's facts in its context files, and nothing of the peer's anywhere.
    for folder, mine, theirs in ((host_dir, HOST_SECRET, GUEST_SECRET), (guest_dir, GUEST_SECRET, HOST_SECRET)):
        holders = sorted(
            str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and mine.encode() in p.read_bytes()
        )
        assert all(h.endswith(".json") and ("profiles/" in h or h.endswith("owner_context.json")) for h in holders)
        assert holders, folder
        leaked = [str(p) for p in folder.rglob("*") if p.is_file() and theirs.encode() in p.read_bytes()]
        assert leaked == []


def test_secrets_are_distinct_from_everything_said() -> None:
    """Guard on the test itself: no secret is a substring of the texts the room legitimately carries."""
    said: list[Any] = ["We propose 50,000 EUR.", "50000 EUR", "Agreed. We need 90 days", "We pay in EUR"]
    assert all(not found(s.encode()) for s in said)
