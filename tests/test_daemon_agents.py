"""The agent runner in-process: each daemon runs its room's agent command (a real process, fed the room
on stdin) on its turns, and a room ends in agreement with no client sending anything after create/join."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clawroomd.testing.inprocess import call, open_daemon, until

# Host: propose price 100; guest: accept what stands; either: once everything is agreed, close (which
# proposes the close, or countersigns the peer's). Every document it was given is logged, one per line.
AGENT = """\
import json, sys
doc = json.load(sys.stdin)
room = doc["room"]
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"you": doc["you"], "seq": doc["seq"], "events": len(doc["transcript"])}) + "\\n")
if room["agreed"] == room["required"]:
    reply = {"action": "close"}
elif doc["you"] == "host":
    reply = {"text": "100?", "moves": [{"op": "propose", "field": "price", "value": "100"}]}
else:
    reply = {"text": "fine", "moves": [{"op": "accept", "field": "price"}]}
print(json.dumps(reply))
"""


async def test_agents_on_both_sides_reach_agreement_without_any_client_sending(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    runs = tmp_path / "runs.jsonl"
    argv = [sys.executable, str(script), str(runs)]
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        created = await call(host, "room.create", topic="price", fields=["price"], agent_command=argv)
        rid = created["room_id"]
        await call(guest, "room.join", join_url=created["join_url"], agent_command=argv)
        await until(lambda: host.rooms[rid].closed and guest.rooms[rid].closed, timeout=30)
        log = host.rooms[rid].core.log
        assert [(e.kind, e.header.author) for e in log] == [
            ("room_created", "host"),
            ("joined", "guest"),
            ("message", "host"),
            ("message", "guest"),
            ("close_proposed", "host"),
            ("close_accepted", "guest"),
            ("room_closed", "host"),
        ]
        assert [e.hash for e in guest.rooms[rid].core.log] == [e.hash for e in log]
        for d in (host, guest):
            result = await call(d, "room.result", room_id=rid)
            assert result["status"] == "agreement_reached" and result["outcomes"] == {"price": "100"}
        # one run per turn, each shown the room as it stood on that turn
        seen = [json.loads(line) for line in runs.read_text().splitlines()]
        assert seen == [
            {"you": "host", "seq": 1, "events": 2},
            {"you": "guest", "seq": 2, "events": 3},
            {"you": "host", "seq": 3, "events": 4},
            {"you": "guest", "seq": 4, "events": 5},
        ]
