"""A closed room's result as a document both sides can hold and anyone can check offline (SPEC §8.1).

Pure: no files, no clock. `build_shared` derives the shared part of `final_result.json` from the room's
signed events alone, so two daemons holding the same transcript produce byte-identical shared parts
(`canonical`). `verify` rebuilds a room from the envelopes a result carries (every signature, every hash
link, every rule), recomputes the shared part and the outcome digest, and compares them with what the
document says; with the transcript it compares every line with the event it must show. A failure names
where (a JSON path, an event seq, a transcript line).

The document: {"format", "shared": {...}, "local": {...}}. `local` (this side's role, notes, delivery
state) is never compared: it is the one part that may differ between the sides and change over time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .envelope import SignedEvent, open_envelope
from .errors import LocalProtocolError
from .events import CloseAccepted, CloseProposed, Joined, Message, Role, RoomClosed, RoomCreated
from .identity import peer_id_for
from .rules import RoomState, outcome_digest, transition

FORMAT = "clawroom.final_result/1"
SIGNED_KINDS = ("close_proposed", "close_accepted", "room_closed")


def canonical(doc: Any) -> bytes:
    """The one byte form of a result (and of its shared part): sorted keys, two-space indent, UTF-8."""
    return (json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode()


def transcript_line(event: SignedEvent) -> bytes:
    """The transcript.jsonl line for an event, as the store writes it."""
    return (json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _move_ref(role: Role, seq: int, refs: tuple[str, ...]) -> dict[str, Any]:
    return {"by": role, "seq": seq, "refs": list(refs)}


@dataclass
class _Standing:
    value: str
    seq: int
    by: Role
    refs: tuple[str, ...]


def _fields(spec: RoomCreated, log: Sequence[SignedEvent]) -> list[dict[str, Any]]:
    """Each required field: the agreed value with who proposed and accepted it (seqs, refs), or the last
    standing proposals. Mirrors rules._message: a new proposal reopens an agreed field."""
    standing: dict[str, dict[Role, _Standing]] = {f.name: {} for f in spec.fields}
    agreed: dict[str, dict[str, Any]] = {}
    for event in log:
        if not isinstance(event.body, Message):
            continue
        author = event.header.author
        peer: Role = "guest" if author == "host" else "host"
        for move in event.body.moves:
            sides = standing[move.field]
            if move.op == "propose":
                assert move.value is not None
                sides[author] = _Standing(move.value, event.header.seq, author, move.refs)
                agreed.pop(move.field, None)
            elif move.op == "accept":
                prop = sides.pop(peer)
                agreed[move.field] = {
                    "value": prop.value,
                    "proposed": _move_ref(prop.by, prop.seq, prop.refs),
                    "accepted": _move_ref(author, event.header.seq, move.refs),
                }
                sides.clear()  # rules: an accepted field's proposals are gone
            else:
                sides.pop(peer, None)
    out = []
    for f in spec.fields:
        row: dict[str, Any] = {"name": f.name, "description": f.description}
        if f.name in agreed:
            row.update(status="agreed", **agreed[f.name])
        else:
            row["status"] = "open"
            row["standing"] = {
                role: {"value": s.value, **_move_ref(s.by, s.seq, s.refs)} for role, s in standing[f.name].items()
            }
        out.append(row)
    return out


def build_shared(log: Sequence[SignedEvent], *, ended_locally: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shared part, from the room's events. `ended_locally` is a guest's own verdict when the host
    stayed away past the deadline: then no room_closed exists and the part says so (nothing signs it)."""
    if not log or not isinstance(log[0].body, RoomCreated):
        raise LocalProtocolError("malformed", "a result needs the room's events from room_created on")
    spec = log[0].body
    room_id = log[0].header.room
    head = log[-1]
    closed = head.body if isinstance(head.body, RoomClosed) else None
    guest = next((e for e in log if e.kind == "joined"), None)
    guest_label = guest.body.label if guest is not None and isinstance(guest.body, Joined) else ""
    fields = _fields(spec, log)
    turns = sum(1 for e in log if isinstance(e.body, Message))
    shared: dict[str, Any] = {
        "room_id": room_id,
        "topic": spec.topic,
        "goal": spec.goal,
        "fields": fields,
        "agreed": {f["name"]: f["value"] for f in fields if f["status"] == "agreed"},
        "unresolved": [f["name"] for f in fields if f["status"] != "agreed"],
        "turns": turns,
        "max_turns": spec.max_turns,
        "started_ts": log[0].header.ts,
        "ended_ts": head.header.ts,
        "duration_ms": max(head.header.ts - log[0].header.ts, 0),
        "participants": [
            {"role": "host", "label": spec.label, "peer_id": peer_id_for(log[0].header.key)},
            {
                "role": "guest",
                "label": guest_label,
                "peer_id": peer_id_for(guest.header.key) if guest is not None else None,
            },
        ],
        "head": head.hash.hex(),
        "event_count": len(log),
        "signed_close": [
            {
                "kind": e.kind,
                "seq": e.header.seq,
                "author": e.header.author,
                "peer_id": peer_id_for(e.header.key),
                "digest": e.body.digest.hex(),
                "envelope": _b64(e.envelope),
            }
            for e in log
            if isinstance(e.body, CloseProposed | CloseAccepted | RoomClosed)
        ],
        "events": [_b64(e.envelope) for e in log],
    }
    if closed is not None:
        shared.update(
            status=closed.outcome.status,
            reason=closed.reason,
            outcome_digest=closed.digest.hex(),
            ended_locally=False,
        )
    else:
        shared.update(
            status=str((ended_locally or {}).get("status", "timeout")),
            reason=str((ended_locally or {}).get("reason", "")),
            outcome_digest=None,
            ended_locally=True,
        )
    return shared


def document(shared: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "shared": shared, "local": local}


# ---- verification --------------------------------------------------------------------------------------


class VerifyError(Exception):
    """The result (or transcript) does not check out; `where` names the place, the message what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Verified:
    room_id: str
    status: str
    agreed: dict[str, str]
    unresolved: list[str]
    events: int
    signers: list[str]  # "close_proposed by host (peer id)", ...
    transcript_lines: int | None
    ended_locally: bool

    def summary(self) -> str:
        agreed = ", ".join(f"{k}={v}" for k, v in self.agreed.items()) or "nothing agreed"
        who = "; ".join(self.signers) or "no close event (ended locally, signed by nobody)"
        tx = f"; transcript: {self.transcript_lines} lines match" if self.transcript_lines is not None else ""
        return f"ok: room {self.room_id} {self.status} ({agreed}); {self.events} events verified; {who}{tx}"


def _first_difference(path: str, claimed: Any, actual: Any) -> tuple[str, Any, Any] | None:
    if isinstance(claimed, dict) and isinstance(actual, dict):
        for key in sorted(set(claimed) | set(actual)):
            if key not in claimed:
                return f"{path}.{key}", "(missing)", actual[key]
            if key not in actual:
                return f"{path}.{key}", claimed[key], "(not in a result)"
            diff = _first_difference(f"{path}.{key}", claimed[key], actual[key])
            if diff:
                return diff
        return None
    if isinstance(claimed, list) and isinstance(actual, list):
        for i, (c, a) in enumerate(zip(claimed, actual, strict=False)):
            diff = _first_difference(f"{path}[{i}]", c, a)
            if diff:
                return diff
        if len(claimed) != len(actual):
            return f"{path}", f"{len(claimed)} items", f"{len(actual)} items"
        return None
    if claimed != actual or type(claimed) is not type(actual):
        return path, claimed, actual
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def replay(envelopes: Sequence[bytes]) -> tuple[list[SignedEvent], RoomState]:
    """Open and check every event (its signature), and apply the room's rules in order (every hash link,
    seq, author key, outcome digest). VerifyError names the event."""
    log: list[SignedEvent] = []
    state: RoomState | None = None
    for i, data in enumerate(envelopes):
        try:
            event = open_envelope(data, verify=True)
        except LocalProtocolError as err:
            raise VerifyError(f"shared.events[{i}]", f"{err.code}: {err.message}") from None
        if state is None:
            state = RoomState(room_id=event.header.room, host_key=event.header.key)
        try:
            state = replace(transition(state, event.header, event.body), head=event.hash)
        except LocalProtocolError as err:
            raise VerifyError(f"shared.events[{i}] (seq {event.header.seq})", f"{err.code}: {err.message}") from None
        log.append(event)
    if state is None:
        raise VerifyError("shared.events", "the result holds no events")
    return log, state


def verify(result_bytes: bytes, transcript_bytes: bytes | None = None) -> Verified:
    """Check a final_result.json (and its transcript.jsonl, if given); VerifyError on the first fault."""
    try:
        doc = json.loads(result_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VerifyError("file", f"not a JSON document ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("shared"), dict):
        raise VerifyError("format", f"not a clawroom result (expected format {FORMAT!r} and a shared part)")
    if canonical(doc) != result_bytes:
        at = next(
            (i for i, (a, b) in enumerate(zip(canonical(doc), result_bytes, strict=False)) if a != b),
            min(len(result_bytes), len(canonical(doc))),
        )
        raise VerifyError(f"byte {at}", "the file is not in its canonical form (it was edited by hand?)")
    shared: dict[str, Any] = doc["shared"]
    raw = shared.get("events")
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise VerifyError("shared.events", "must be a list of base64 envelopes")
    envelopes = []
    for i, text in enumerate(raw):
        try:
            envelopes.append(base64.b64decode(text, validate=True))
        except ValueError:
            raise VerifyError(f"shared.events[{i}]", "not base64") from None
    log, state = replay(envelopes)
    ended_locally = shared.get("ended_locally") is True
    if state.result is None and not ended_locally:
        raise VerifyError(
            "shared.events", "the room has no room_closed event, and the result does not say it ended locally"
        )
    if state.result is not None:
        res = state.result
        digest = outcome_digest(state.room_id, res.outcome)
        if digest != res.digest:  # rules check close_proposed's digest; this is the host's own close
            raise VerifyError(f"room_closed (seq {state.seq})", "its digest is not the digest of its outcome")
        if res.outcome.status == "agreement_reached" or any(e.kind == "close_accepted" for e in log):
            kinds = {e.kind: e for e in log if e.kind in SIGNED_KINDS}
            proposed, accepted = kinds.get("close_proposed"), kinds.get("close_accepted")
            if proposed is None or accepted is None or proposed.header.author == accepted.header.author:
                raise VerifyError("shared.signed_close", "an agreed outcome needs a close signed by each side")
    local_verdict = {"status": shared.get("status"), "reason": shared.get("reason")} if ended_locally else None
    expected = build_shared(log, ended_locally=local_verdict)
    diff = _first_difference("shared", shared, expected)
    if diff is not None:
        where, claimed, actual = diff
        raise VerifyError(where, f"the result says {_short(claimed)}, the signed events say {_short(actual)}")
    lines = None
    if transcript_bytes is not None:
        lines = _check_transcript(transcript_bytes, log)
    return Verified(
        room_id=state.room_id,
        status=str(expected["status"]),
        agreed=dict(expected["agreed"]),
        unresolved=list(expected["unresolved"]),
        events=len(log),
        signers=[
            f"{s['kind']} #{s['seq']} signed by the {s['author']} ({s['peer_id']})" for s in expected["signed_close"]
        ],
        transcript_lines=lines,
        ended_locally=ended_locally,
    )


def _check_transcript(data: bytes, log: Sequence[SignedEvent]) -> int:
    """Every transcript line must be exactly the view of the signed event at its place: the lines hold no
    signatures, so they are checked against the result's envelopes, which do."""
    lines = data.splitlines(keepends=True)
    for i, (line, event) in enumerate(zip(lines, log, strict=False)):
        want = transcript_line(event)
        if line == want:
            continue
        where = f"transcript line {i + 1} (seq {event.header.seq})"
        try:
            got = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VerifyError(where, "not a JSON line") from None
        diff = _first_difference("line", got, event.to_json())
        if diff is None:
            raise VerifyError(where, "not in the transcript's byte form (edited by hand?)")
        path, claimed, actual = diff
        raise VerifyError(
            f"{where} {path[len('line') :].lstrip('.')}",
            f"says {_short(claimed)}, the signed event says {_short(actual)}",
        )
    if len(lines) != len(log):
        raise VerifyError("transcript", f"{len(lines)} lines, but the result holds {len(log)} events")
    return len(lines)
