"""A small deterministic negotiator for the demo: an agent command (see `clawroomd.daemon.agents`).

    python -m clawroomd.demo.negotiator --role host|guest  < agent-input.json

It reads the daemon's agent document on stdin (``{"you", "room", "transcript", "owner", "answers"}``) and
prints one reply: ``{"text", "moves"}`` for a message, ``{"action": "close"}`` to propose or countersign
the close, ``{"action": "ask_owner", ...}`` to escalate, or ``{"action": "wait"}``. Each side has, per
field, a preferred value, the values it can live with and the message in which it raises the field. On
its turn it accepts every standing proposal of the peer it can live with, counters the others with its
next acceptable value (or rejects when it has none left), raises the fields on its agenda, and proposes
the close once everything is agreed; it countersigns a close the peer proposed.

Its owner's authority limits (`owner.limits`, e.g. ``idempotency_policy<=30``) bind it: a value it would
accept or propose that crosses one (or cannot be read against it) is first put to the owner with
``ask_owner``; an approving answer is cited as ``answer:<question_id>`` (the daemon checks that), a
rejection takes the value off its list. It never reads `owner.private_facts`: what it says is scripted.
No clock, no randomness: the same room and answers always give the same transcript (``--pace S`` only
waits S seconds before replying, so a person can follow the demo's live view).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from clawroomd.owner.limits import LimitError, check, parse_limit

MINOR_UNITS = "integer minor units (e.g. 1050 = 10.50)"
IDEM_STRICT = "Idempotency-Key required on all POST requests; 30-day grace period for existing integrations"
IDEM_GRACE = "Idempotency-Key required on all POST requests; 90-day grace period for existing integrations"
SHA256 = "SHA-256 over the raw JSON body, sent as data_hash"
RETRY_FIXED = "fixed 30s interval, 5 attempts max"
RETRY_CONFIGURABLE = "configurable per endpoint; default 30s interval, 5 attempts max"

# How a side names a value when it accepts it.
SHORT = {
    MINOR_UNITS: "minor units",
    IDEM_STRICT: "idempotency keys on all POST with a 30-day grace",
    IDEM_GRACE: "a 90-day grace period",
    SHA256: "SHA-256 hash",
    RETRY_FIXED: "fixed 30s, 5 attempts",
    RETRY_CONFIGURABLE: "configurable retry with a 30s default",
}


@dataclass(frozen=True, kw_only=True)
class Stance:
    ok: tuple[str, ...]  # values this side accepts from the peer, preferred first
    raise_in: int | None = None  # which of our own messages raises the field (0: the first)
    raise_text: str = ""  # how we say it when we raise it
    counter_text: str = ""  # how we say it when we counter the peer's value

    @property
    def want(self) -> str:
        return self.ok[0]


STANCES: dict[str, dict[str, Stance]] = {
    "host": {
        "amount_format": Stance(ok=(MINOR_UNITS,), raise_in=0, raise_text="amounts in minor units"),
        "idempotency_policy": Stance(
            ok=(IDEM_STRICT, IDEM_GRACE),
            raise_in=0,
            raise_text="idempotency keys required on all POST (30-day grace for existing integrations)",
        ),
        "hash_algorithm": Stance(ok=(SHA256,)),
        "webhook_retry_policy": Stance(
            ok=(RETRY_FIXED, RETRY_CONFIGURABLE),
            raise_in=1,
            raise_text="webhook retries change from exponential backoff to fixed 30s, 5 attempts max",
        ),
    },
    "guest": {
        "amount_format": Stance(ok=(MINOR_UNITS,)),
        "idempotency_policy": Stance(
            ok=(IDEM_GRACE,),
            counter_text="Idempotency: 30 days is too short for 200k+ webhook consumers; "
            "we need a 90-day grace period for migration.",
        ),
        "hash_algorithm": Stance(
            ok=(SHA256,),
            raise_in=0,
            raise_text="data_hash is fine if the algorithm is specified (SHA-256 over the raw JSON body)",
        ),
        "webhook_retry_policy": Stance(
            ok=(RETRY_CONFIGURABLE,),
            counter_text="Fixed 30s is too aggressive for high-throughput consumers. "
            "Counter: configurable per endpoint, 30s/5-attempt as default.",
        ),
    },
}
OPENING_NOTE = {"host": "Webhook payloads will include a data_hash for integrity."}


def clearance(doc: dict[str, Any], field: str, value: str) -> tuple[str, str | None]:
    """What our owner's limits say about agreeing `field` = `value`: ("ok", None) within them,
    ("approved", "answer:<id>") or ("rejected", None) when the owner answered, else ("ask", question)."""
    for text in (doc.get("owner") or {}).get("limits") or []:
        try:
            limit = parse_limit(text)
        except LimitError:
            continue  # the daemon refuses a context with one; nothing to go by
        if limit.field != field or check(limit, value) is True:
            continue
        for a in reversed(doc.get("answers") or []):
            if a.get("field") == field and a.get("value") == value:
                return ("approved", f"answer:{a['question_id']}") if a.get("approved") else ("rejected", None)
        said = SHORT.get(value, repr(value))
        return "ask", f"The other side wants {field}: {said}. That is past your limit {text}. May I agree?"
    return "ok", None


def _refs(said: str | None) -> list[str]:
    return [said] if said and said.startswith("answer:") else []


def _ask(question: str | None, field: str, value: str) -> dict[str, Any]:
    return {"action": "ask_owner", "question": question, "options": ["approve", "reject"], "field": field,
            "value": value}  # fmt: skip


def decide(doc: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """The reply to one agent document. Pure: the same document always gives the same reply."""
    me = doc.get("you") or role
    if me not in STANCES:
        raise ValueError(f"unknown role {me!r}")
    if role is not None and role != me:
        raise ValueError(f"this negotiator plays the {role} but the daemon says we are the {me}")
    peer = "guest" if me == "host" else "host"
    room = doc["room"]
    stances = STANCES[me]
    fields = {f["name"]: f for f in room.get("fields", [])}
    all_agreed = bool(fields) and all(f["status"] == "agreed" for f in fields.values())

    pending = room.get("pending_close")
    if pending is not None:
        return {"action": "close"} if pending.get("proposer") != me else {"action": "wait"}
    if all_agreed:
        return {"action": "close"}
    max_turns = room.get("max_turns")
    if me in (room.get("consulting") or []):
        return {"action": "wait"}  # our owner has not answered yet
    if room.get("turn") != me or (max_turns is not None and room.get("turns", 0) >= max_turns):
        return {"action": "wait"}  # not a message turn (e.g. asked only to close, and we cannot agree yet)

    transcript = doc.get("transcript", [])
    messages = [e for e in transcript if e.get("kind") == "message"]
    mine = [e for e in messages if e.get("author") == me]
    proposed_before: dict[str, set[str]] = {}
    for e in mine:
        for m in e["body"].get("moves", []):
            if m.get("op") == "propose":
                proposed_before.setdefault(m["field"], set()).add(m["value"])

    accepts: list[dict[str, Any]] = []
    counters: list[tuple[dict[str, Any], str]] = []
    raises: list[tuple[dict[str, Any], str]] = []
    for name, f in fields.items():
        if f["status"] == "agreed":
            continue
        stance = stances.get(name)
        theirs = (f.get("proposals") or {}).get(peer)
        ours = (f.get("proposals") or {}).get(me)
        if theirs is not None:
            if stance is None or theirs in stance.ok:
                verdict, said = clearance(doc, name, theirs)
                if verdict == "ask":
                    return _ask(said, name, theirs)
                if verdict != "rejected":
                    accepts.append({"op": "accept", "field": name, "value": theirs, "refs": _refs(said)})
                    continue
            tried = {ours, theirs, *proposed_before.get(name, set())}
            fresh = [v for v in (stance.ok if stance else ()) if v not in tried]
            fresh = [v for v in fresh if clearance(doc, name, v)[0] != "rejected"]
            if fresh:
                verdict, said = clearance(doc, name, fresh[0])
                if verdict == "ask":
                    return _ask(said, name, fresh[0])
                text = stance.counter_text if stance and stance.counter_text else f"{name}: counter: {fresh[0]}."
                counters.append(({"op": "propose", "field": name, "value": fresh[0], "refs": _refs(said)}, text))
            else:
                counters.append(({"op": "reject", "field": name}, f"We cannot accept {theirs!r} for {name}."))
        elif ours is None and stance is not None and stance.raise_in is not None and stance.raise_in <= len(mine):
            verdict, said = clearance(doc, name, stance.want)
            if verdict == "ask":
                return _ask(said, name, stance.want)
            if verdict != "rejected":
                move = {"op": "propose", "field": name, "value": stance.want, "refs": _refs(said)}
                raises.append((move, stance.raise_text or name))

    agreed_after = sum(1 for f in fields.values() if f["status"] == "agreed") + len(accepts)
    done = agreed_after == len(fields)
    parts = []
    if accepts:
        names = ", ".join(
            SHORT.get(m["value"], f"{m['field']} = {m['value']}") + (" (our owner approved it)" if m["refs"] else "")
            for m in accepts
        )
        parts.append(f"{'Agreed' if done else 'Accepted'}: {names}.")
    parts.extend(text for _, text in counters)
    if raises:
        lead = "Proposing v3 contract" if not messages else "Adding"
        parts.append(f"{lead}: {', '.join(text for _, text in raises)}.")
        if not messages and me in OPENING_NOTE:
            parts.append(OPENING_NOTE[me])
    if done:
        parts.append("All outcomes resolved.")
    moves = accepts + [m for m, _ in counters] + [m for m, _ in raises]
    if not moves:
        waiting = [n for n, f in fields.items() if f["status"] != "agreed"]
        parts.append(f"Waiting for your proposal on {', '.join(waiting)}.")
    return {"text": " ".join(parts), "moves": moves}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clawroomd.demo.negotiator", description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("host", "guest"), required=True)
    p.add_argument("--pace", type=float, default=0.0, metavar="S", help="wait S seconds before replying")
    args = p.parse_args(argv)
    doc = json.load(sys.stdin)
    reply = decide(doc, args.role)
    if args.pace > 0:
        time.sleep(args.pace)
    json.dump(reply, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
