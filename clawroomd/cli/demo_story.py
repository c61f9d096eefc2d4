"""The story `clawroom demo` tells (the product page's): who the two owners are, what each one's agent
may agree alone, what each keeps private, and how the host's owner answers the one question.

Two owner contexts, written with the owner-context API (`context.write`, as `clawroom context write`
does) into a profile on each daemon, then named by `room.create` / `room.join`:

* the host, a payments infrastructure lead, whose agent may grant at most a 30-day grace period for
  idempotency keys on its own (`idempotency_policy<=30`): the guest's 90 days goes to the owner;
* the guest, a backend platform engineer with 200k+ webhook consumers.

Each has a private fact, which must never reach the other daemon (the demo checks its files).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clawroomd.client import Client

from . import render

PROFILES = {"host": "payments-lead", "guest": "platform-eng"}
OWNERS: dict[str, dict[str, Any]] = {
    "host": {
        "owner_name": "priya",
        "role": "Payment infrastructure lead",
        "task_context": "Settle the Payments v3 API contract with the backend platform team.",
        "goals": ["Align on Payments v3 contract"],
        "constraints": ["Must keep backward compat for 90d"],
        "priorities": ["Webhook reliability over latency"],
        "confirmed_facts": ["Payments v2 stays supported for 90 days after the v3 launch"],
        "private_facts": ["Our acquirer fines us 25,000 USD for every hour webhooks are down"],
        "limits": ["idempotency_policy<=30"],  # days of grace the agent may grant without asking
    },
    "guest": {
        "owner_name": "marco",
        "role": "Backend platform engineer",
        "task_context": "Get a Payments v3 contract our webhook consumers can migrate to without downtime.",
        "goals": ["Ensure smooth migration path"],
        "constraints": ["200k+ existing webhook consumers"],
        "priorities": ["Zero-downtime transition"],
        "private_facts": ["Our migration budget this quarter is 120,000 EUR"],
    },
}
# Each private fact's telling parts, in the spellings a leak would take: none may be on the other daemon.
SECRETS = {
    "host": ["25,000 USD", "25,000", "25000", "25k", "acquirer fines"],
    "guest": ["120,000 EUR", "120,000", "120000", "120k", "migration budget"],
}
ANSWER = "Approved: 90 days matches the backward-compat window we promised."


def owner_line(role: str) -> str:
    o = OWNERS[role]
    limits = f" · may agree alone within: {', '.join(o['limits'])}" if o.get("limits") else ""
    return (
        f"{o['owner_name']} ({o['role']}): goal {o['goals'][0]!r} · constraint {o['constraints'][0]!r} · "
        f"priority {o['priorities'][0]!r}{limits} · {len(o['private_facts'])} private fact (stays on this daemon)"
    )


class DemoOwner:
    """The host's owner, played by the demo: answers its agent's question (approves it) once it has waited
    `delay` seconds, and keeps what happened for the screen and the report."""

    def __init__(self, connect: Callable[[], Client], room_id: str, label: str, *, delay: float) -> None:
        self.connect, self.room_id, self.label, self.delay = connect, room_id, label, delay
        self.seen: dict[str, float] = {}  # question id -> when the demo first saw it
        self.records: list[dict[str, Any]] = []

    def poll(self) -> bool:
        """Answer the room's pending question if it has waited long enough; True if one was answered."""
        with self.connect() as c:
            pending = [q for q in c.call("owner.inbox")["questions"] if q["room_id"] == self.room_id]
            if not pending:
                return False
            q = pending[0]
            first = self.seen.setdefault(q["question_id"], time.monotonic())
            if time.monotonic() - first < self.delay:
                return False
            answer = c.call("room.answer", room_id=self.room_id, approved=True, text=ANSWER)
        self.records.append({"question": q, "answer": answer})
        return True

    def lines(self) -> list[str]:
        out = []
        for r in self.records:
            q = r["question"]
            out.append(f"Escalation: {self.label} asked its owner ({q['question_id']}): {render.safe(q['question'])}")
            out.append(f"  answered automatically by the demo's owner: approve, {ANSWER!r}")
        if any(qid not in {r["question"]["question_id"] for r in self.records} for qid in self.seen):
            out.append(f"Escalation: {self.label} waits for its owner's answer (the demo's owner answers in a moment)")
        return out


def leaks(secrets: list[str], state_dir: Path) -> list[str]:
    """Which of `secrets` appear in any file under `state_dir` (the database and every room file)."""
    found: set[str] = set()
    for path in state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.update(s for s in secrets if s.encode() in data)
    return sorted(found)
