"""Check that two daemons hold one room alike: the checks the crash and partition suites end with.

A room is consistent when both sides' `transcript.jsonl` are byte-identical; its lines are the events
0..n-1, each linked to the one before (nothing lost, nothing doubled, no fork); the local API's
transcript on each side is, byte for byte in the file's JSON form, those same lines; no (author, sid)
appears twice; and, once closed, each side's `final_result.json` passes the offline verifier against its
transcript (every signature, every hash link) with the same shared part on both sides.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from clawroomd.core.final_result import VerifyError, verify

from .daemons import DaemonProcess

ZERO_HASH = "00" * 32


def transcript_form(event: dict[str, Any]) -> bytes:
    """An API event in transcript.jsonl's byte form (the store's sorted, compact JSON)."""
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n").encode()


def chain_problems(data: bytes, who: str) -> list[str]:
    """Seqs 0..n-1 in order, each `prev` the `hash` of the line before, no (author, sid) twice."""
    problems: list[str] = []
    prev, sids = ZERO_HASH, set()
    for i, line in enumerate(data.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            return [f"{who}: line {i + 1} is not JSON: {line[:80]!r}"]
        if event.get("seq") != i:
            problems.append(f"{who}: line {i + 1} has seq {event.get('seq')} (an event lost or doubled)")
        if event.get("prev") != prev:
            problems.append(f"{who}: seq {event.get('seq')} does not link to the event before it")
        key = (event.get("author"), event.get("sid"))
        if key in sids:
            problems.append(f"{who}: seq {event.get('seq')} repeats the submission {key}")
        sids.add(key)
        prev = event.get("hash")
    return problems


def room_problems(host: DaemonProcess, guest: DaemonProcess, room_id: str, *, closed: bool = True) -> list[str]:
    """Every way the two sides' copies of the room differ or are broken (empty: consistent)."""
    files = {}
    for d in (host, guest):
        path = d.state_dir / "rooms" / room_id / "transcript.jsonl"
        files[d.name] = path.read_bytes() if path.exists() else b""
    problems = chain_problems(files[host.name], host.name) + chain_problems(files[guest.name], guest.name)
    if files[host.name] != files[guest.name]:
        lines = {name: data.count(b"\n") for name, data in files.items()}
        problems.append(
            f"transcript.jsonl differs: {host.name} has {lines[host.name]} lines, {guest.name} {lines[guest.name]}"
        )
    for d in (host, guest):
        events = d.call("room.transcript", room_id=room_id)["events"]
        if b"".join(transcript_form(e) for e in events) != files[d.name]:
            problems.append(f"{d.name}: the API transcript is not the bytes of its transcript.jsonl")
    if closed:
        shared = []
        for d in (host, guest):
            folder = d.state_dir / "rooms" / room_id
            try:
                result = (folder / "final_result.json").read_bytes()
                verify(result, files[d.name])
                shared.append(json.loads(result)["shared"])
            except (OSError, VerifyError) as err:
                problems.append(f"{d.name}: final_result.json does not verify: {err}")
        if len(shared) == 2 and shared[0] != shared[1]:
            problems.append("the shared parts of the two final_result.json differ")
    return [f"room {room_id}: {p}" for p in problems]


def database_problems(state_dir: Path, rooms: dict[str, int] | None = None) -> list[str]:
    """SQLite's full `integrity_check`, and (given room id -> event count) the events stored per room."""
    db = sqlite3.connect(state_dir / "clawroomd.db")
    try:
        check = [row[0] for row in db.execute("PRAGMA integrity_check")]
        problems = [] if check == ["ok"] else [f"{state_dir}: integrity_check: {'; '.join(check[:5])}"]
        for room_id, count in (rooms or {}).items():
            stored = db.execute("SELECT COUNT(*), MAX(seq) FROM events WHERE room_id = ?", (room_id,)).fetchone()
            if stored != (count, count - 1):
                problems.append(
                    f"{state_dir}: room {room_id} stores {stored[0]} events, last seq {stored[1]}, not {count}"
                )
    finally:
        db.close()
    return problems
