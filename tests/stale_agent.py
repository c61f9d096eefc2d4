"""A scripted guest agent for the stale-reply tests (an `--agent` command; see clawroomd.daemon.agents).

    python stale_agent.py DIR  < agent document

It accepts the host's price while it is at most 100 and counters with 100 otherwise; its text says what
it saw (`saw 100 at seq 2`), so a test can tell which view a message came from. Every run appends
{"seq", "saw"} to DIR/agent.log. The test holds a run with files: a run on seq N waits for DIR/go-N if
DIR/hold-N exists, and a second run on the same seq (the daemon re-running the agent for a turn it
already answered) waits for DIR/go-rerun.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    folder = Path(sys.argv[1])
    doc = json.load(sys.stdin)
    room = doc["room"]
    seq = room["seq"]
    price = next(f for f in room["fields"] if f["name"] == "price")
    saw = (price.get("proposals") or {}).get("host")
    log = folder / "agent.log"
    earlier = [json.loads(line)["seq"] for line in log.read_text().splitlines()] if log.exists() else []
    with log.open("a") as f:
        f.write(json.dumps({"seq": seq, "saw": saw}) + "\n")
    gate = folder / "go-rerun" if seq in earlier else None
    if gate is None and (folder / f"hold-{seq}").exists():
        gate = folder / f"go-{seq}"
    deadline = time.monotonic() + 60
    while gate is not None and not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if saw is None:
        reply: dict[str, object] = {"action": "wait"}
    elif int(saw) <= 100:
        reply = {"text": f"saw {saw} at seq {seq}", "moves": [{"op": "accept", "field": "price"}]}
    else:
        reply = {"text": f"saw {saw} at seq {seq}", "moves": [{"op": "propose", "field": "price", "value": "100"}]}
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
