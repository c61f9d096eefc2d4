"""JSON views of a room for the local API: the status card, list rows and the result."""

from __future__ import annotations

from typing import Any

from ..core.events import other
from ..core.identity import peer_id_for
from ..core.lifecycle import lifecycle as room_lifecycle
from .clock import now_ms
from .live import LiveRoom


def lifecycle(live: LiveRoom) -> str:
    """DESIGN §1's participant lifecycle (core.lifecycle; SPEC.md §6 gives the mapping). One thing the
    transcript cannot say comes from here: a host whose owner context is written has done its part and
    waits for the peer in `joining` (the context never enters the room, so the core cannot know it)."""
    stage = room_lifecycle(live.state, live.role, ended_locally=live.local_result is not None)
    if stage == "invited" and live.owner_context is not None:
        return "joining"
    return stage


def result_view(live: LiveRoom) -> dict[str, Any] | None:
    if live.local_result is not None:
        return live.local_result
    res = live.state.result
    if res is None:
        return None
    log = live.core.log
    return {
        "status": res.outcome.status,
        "reason": res.reason,
        "outcomes": dict(res.outcome.outcomes),
        "unresolved": list(res.outcome.unresolved),
        "digest": res.digest.hex(),
        "turns": live.state.turns,
        "duration_ms": log[-1].header.ts - log[0].header.ts,
        "head": live.state.head.hex(),
        "events": len(log),
    }


def fields_view(live: LiveRoom) -> list[dict[str, Any]]:
    st = live.state
    if st.spec is None:
        return []
    out = []
    for spec in st.spec.fields:
        proposals = dict(st.proposals.get(spec.name, {}))
        if spec.name in st.agreed:
            status, value = "agreed", st.agreed[spec.name]
        else:
            status, value = ("proposed" if proposals else "open"), None
        out.append(
            {
                "name": spec.name,
                "description": spec.description,
                "status": status,
                "value": value,
                "proposals": proposals,
            }
        )
    return out


def status_view(live: LiveRoom) -> dict[str, Any]:
    st = live.state
    spec = st.spec
    log = live.core.log
    started = log[0].header.ts if log else now_ms()
    ended = log[-1].header.ts if st.phase == "closed" else now_ms()
    participants = {
        "host": {"peer_id": peer_id_for(st.host_key), "label": spec.label if spec else ""},
        "guest": {"peer_id": peer_id_for(st.guest_key) if st.guest_key else None, "label": st.guest_label},
    }
    view: dict[str, Any] = {
        "room_id": live.room_id,
        "role": live.role,
        "topic": spec.topic if spec else live.meta.get("topic", ""),
        "goal": spec.goal if spec else "",
        "phase": st.phase,
        "lifecycle": lifecycle(live),
        "participants": participants,
        "turn": st.turn,
        "awaiting": sorted(live.awaiting()),
        "your_turn": live.our_turn,
        "turns": st.turns,
        "max_turns": spec.max_turns if spec else None,
        "messages": st.turns,  # one message is one turn: no need to count the log
        "events": len(log),
        "seq": st.seq,
        "head": st.head.hex(),
        "duration_ms": max(ended - started, 0),
        "fields": fields_view(live),
        "agreed": len(st.agreed),
        "required": len(spec.fields) if spec else 0,
        "pending_close": None
        if st.pending_close is None
        else {
            "proposer": st.pending_close.proposer,
            "status": st.pending_close.outcome.status,
            "outcomes": dict(st.pending_close.outcome.outcomes),
        },
        "consulting": sorted(st.consulting),
        "peer_connected": live.link_up,
        "result": result_view(live),
        # Our own owner's role, goals, constraints, priorities (no fact): the peer's context we never have.
        "owner": live.owner_context.card() if live.owner_context is not None else None,
    }
    if live.role == "host" and "join_url" in live.meta and st.phase == "invited":
        view["join_url"] = live.meta["join_url"]
    if spec is not None:
        view["deadlines"] = {
            "turn_timeout_ms": spec.turn_timeout_ms,
            "deadline_ms": spec.deadline_ms,
            "answer_timeout_ms": spec.answer_timeout_ms,
        }
    return view


def list_row(live: LiveRoom) -> dict[str, Any]:
    st = live.state
    res = result_view(live)
    return {
        "room_id": live.room_id,
        "role": live.role,
        "topic": st.spec.topic if st.spec else live.meta.get("topic", ""),
        "lifecycle": lifecycle(live),
        "turns": st.turns,
        "max_turns": st.spec.max_turns if st.spec else None,
        "your_turn": live.our_turn,
        "peer": other(live.role),
        "result": res["status"] if res else None,
    }
