"""Plain-text views for the CLI: the status card, transcript lines, results. Pure functions of the API's JSON.

No imports beyond the standard library: rendering must not slow the CLI down.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def fmt_duration(ms: int | float | None) -> str:
    """12.4s, 3m 05s, 2h 03m, 1d 04h."""
    if ms is None:
        return "-"
    s = max(float(ms), 0.0) / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def fmt_offset(ms: int) -> str:
    """Time since the room was created, as the seed transcript shows it: mm:ss.mmm."""
    ms = max(int(ms), 0)
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def short_id(peer_id: str | None) -> str:
    """The first two groups of a peer id: enough to tell daemons apart on a card."""
    if not peer_id:
        return "-"
    return "-".join(peer_id.split("-")[:2])


def _label(participants: dict[str, Any], role: str) -> str:
    p = participants.get(role) or {}
    return str(p.get("label") or role)


# ------------------------------------------------------------------------------------------- status card
def status_card(view: dict[str, Any]) -> str:
    """The room's status card (result of room.status), laid out like the product page's live session."""
    role = view.get("role", "?")
    parts = view.get("participants") or {}
    lines = [f"Live Session {view.get('room_id', '?')}"]
    lines.append(f"Room: {view.get('topic', '')}")
    if view.get("goal"):
        lines.append(f"Goal: {view['goal']}")
    link = "peer connected" if view.get("peer_connected") else "peer not connected"
    lines.append(f"Status: {str(view.get('lifecycle', '?')).upper()}  (you are the {role}; {link})")
    lines.append("Participants:")
    names = {
        r: _label(parts, r) if r == "host" or (parts.get(r) or {}).get("peer_id") else "(not joined yet)"
        for r in ("host", "guest")
    }
    width = max(len(n) for n in names.values())
    for r in ("host", "guest"):
        p = parts.get(r) or {}
        you = "  (you)" if r == role else ""
        lines.append(f"  {r:<5}  {names[r]:<{width}}  {short_id(p.get('peer_id'))}{you}")
    max_turns = view.get("max_turns")
    lines.append(
        f"Messages {view.get('messages', 0)} · Duration {fmt_duration(view.get('duration_ms'))} · "
        f"Outcomes {view.get('agreed', 0)}/{view.get('required', 0)} · "
        f"turn {view.get('turns', 0)}/{max_turns if max_turns is not None else '?'}"
    )
    lines.append(f"Whose turn: {whose_turn(view)}")
    fields = view.get("fields") or []
    if fields:
        lines.append("Fields:")
        fw = max(len(f["name"]) for f in fields)
        for f in fields:
            status = f.get("status", "open")
            if status == "agreed":
                detail = str(f.get("value"))
            elif f.get("proposals"):
                detail = " · ".join(f"{r}: {v!r}" for r, v in sorted(f["proposals"].items()))
            else:
                detail = f.get("description") or ""
            lines.append(f"  {f['name']:<{fw}}  {status:<8}  {detail}".rstrip())
    pending = view.get("pending_close")
    if pending:
        waiting = "guest" if pending.get("proposer") == "host" else "host"
        lines.append(
            f"Pending close: the {pending.get('proposer')} proposed closing as {pending.get('status')}; "
            f"waiting for the {waiting} to countersign"
        )
    if view.get("consulting"):
        lines.append(f"Consulting its owner: {', '.join(view['consulting'])}")
    result = view.get("result")
    if result:
        lines.append("Result: " + result_line(result, max_turns=max_turns, required=view.get("required")))
    if view.get("join_url"):
        lines.append(f"Join URL: {view['join_url']}")
    return "\n".join(lines)


def whose_turn(view: dict[str, Any]) -> str:
    if view.get("result"):
        return "nobody (the room is closed)"
    awaiting = list(view.get("awaiting") or [])
    if view.get("lifecycle") in ("invited", "joining"):
        return "nobody yet (waiting for the guest to join)"
    if not awaiting:
        return "nobody (the host is closing the room)" if view.get("phase") == "closing" else "nobody"
    role = view.get("role")
    names = " and ".join(awaiting)
    if view.get("your_turn"):
        return f"{names} (yours)"
    if role in awaiting:
        return f"{names} (yours, but your side is consulting its owner)"
    return f"{names} (waiting for the peer)"


def result_line(result: dict[str, Any], *, max_turns: Any = None, required: Any = None) -> str:
    outcomes = result.get("outcomes") or {}
    total = required if required is not None else len(outcomes) + len(result.get("unresolved") or [])
    text = f"{result.get('status')}. Duration: {fmt_duration(result.get('duration_ms'))}."
    if "turns" in result:
        text += f" Turns: {result['turns']}/{max_turns if max_turns is not None else '?'}."
    text += f" Outcomes: {len(outcomes)}/{total}."
    if result.get("reason"):
        text += f" ({result['reason']})"
    return text


def result_text(result: dict[str, Any], *, max_turns: Any = None) -> str:
    """The `clawroom result` view: status line, each outcome, unresolved fields, the hashes both sides hold."""
    lines = [f"Room {result.get('room_id', '?')} ({result.get('role', '?')}): {result.get('topic', '')}"]
    lines.append("Result: " + result_line(result, max_turns=max_turns))
    outcomes = result.get("outcomes") or {}
    if outcomes:
        lines.append("Outcomes:")
        w = max(len(k) for k in outcomes)
        lines.extend(f"  {k:<{w}}  {v}" for k, v in outcomes.items())
    if result.get("unresolved"):
        lines.append("Unresolved: " + ", ".join(result["unresolved"]))
    if result.get("local"):
        lines.append("This result is this daemon's alone; the host did not sign it.")
    for key in ("head", "digest"):
        if result.get(key):
            lines.append(f"{'Transcript head' if key == 'head' else 'Outcome digest'}: {result[key]}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- transcript
class TranscriptRenderer:
    """Turns room events (room.event / room.transcript JSON) into seed-style lines::

        00:02.341 stripe-agent  Proposing v3 contract: ...
                                propose amount_format = integer minor units

    Feed it every event from seq 0 so it knows the creation time, labels and limits; `line` returns
    the text for one event (several lines for a message with moves).
    """

    def __init__(self, participants: dict[str, Any] | None = None) -> None:
        parts = participants or {}
        self.labels = {r: _label(parts, r) for r in ("host", "guest")}
        self.t0: int | None = None
        self.max_turns: Any = "?"
        self.required = 0
        self.messages = 0
        self.width = max(len("system"), *(len(v) for v in self.labels.values()))

    def _who(self, role: str) -> str:
        return self.labels.get(role, role)

    def _row(self, ts: int, who: str, text: str) -> str:
        return f"{fmt_offset(ts - (self.t0 if self.t0 is not None else ts))} {who:<{self.width}} {text}"

    def line(self, event: dict[str, Any]) -> str:
        kind, body, ts = event.get("kind"), event.get("body") or {}, int(event.get("ts", 0))
        author = str(event.get("author", "?"))
        if self.t0 is None:
            self.t0 = ts
        match kind:
            case "room_created":
                self.max_turns = body.get("max_turns", "?")
                names = [f.get("name") for f in body.get("fields", [])]
                self.required = len(names)
                return self._row(
                    ts,
                    "system",
                    f"Room created. Topic: {body.get('topic')}. Max turns: {self.max_turns}. "
                    f"Required outcomes: {', '.join(map(str, names))}.",
                )
            case "joined":
                if body.get("label"):
                    self.labels["guest"] = body["label"]
                    self.width = max(self.width, len(body["label"]))
                return self._row(
                    ts, "system", f"{self._who('host')} joined as host. {self._who('guest')} joined as guest."
                )
            case "message":
                self.messages += 1
                rows = [self._row(ts, self._who(author), body.get("text") or "(no text)")]
                pad = " " * (len(fmt_offset(0)) + self.width + 2)
                rows.extend(pad + move_text(m) for m in body.get("moves") or [])
                return "\n".join(rows)
            case "consult_started":
                return self._row(ts, "system", f"{self._who(author)} is consulting its owner.")
            case "consult_ended":
                return self._row(ts, "system", f"{self._who(author)} is back from consulting its owner.")
            case "close_proposed":
                out = body.get("outcome") or {}
                agreed = len(out.get("outcomes") or {})
                total = agreed + len(out.get("unresolved") or [])
                return self._row(
                    ts,
                    "system",
                    f"{self._who(author)} proposed closing as {out.get('status')} ({agreed}/{total} outcomes agreed).",
                )
            case "close_accepted":
                return self._row(ts, "system", f"{self._who(author)} countersigned the close.")
            case "error":
                what = (
                    "cancelled the room" if body.get("code") == "cancelled" else f"ended the room: {body.get('code')}"
                )
                extra = f" ({body['message']})" if body.get("message") else ""
                return self._row(ts, "system", f"{self._who(author)} {what}{extra}.")
            case "room_closed":
                out = body.get("outcome") or {}
                agreed = len(out.get("outcomes") or {})
                total = agreed + len(out.get("unresolved") or [])
                text = (
                    f"Room closed. Result: {out.get('status')}. Duration: {fmt_duration(ts - (self.t0 or ts))}. "
                    f"Turns: {self.messages}/{self.max_turns}. Outcomes: {agreed}/{total}."
                )
                if out.get("status") != "agreement_reached" and body.get("reason"):
                    text += f" Reason: {body['reason']}."
                return self._row(ts, "system", text)
        return self._row(ts, self._who(author), f"({kind})")

    def lines(self, events: Iterable[dict[str, Any]], *, from_seq: int = 0) -> list[str]:
        out = []
        for e in events:
            text = self.line(e)
            if int(e.get("seq", 0)) >= from_seq:
                out.append(text)
        return out


def move_text(move: dict[str, Any]) -> str:
    op, field = move.get("op"), move.get("field")
    if op == "reject" or move.get("value") is None:
        return f"{op} {field}"
    return f"{op} {field} = {move['value']}"


# ------------------------------------------------------------------------------------------------ tables
def rooms_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No rooms on this daemon. Create one with `clawroom create --topic ... --field ...`."
    header = ("ROOM", "ROLE", "STATUS", "TURNS", "YOUR TURN", "RESULT", "TOPIC")
    table = [header]
    for r in rows:
        mt = r.get("max_turns")
        table.append(
            (
                str(r.get("room_id")),
                str(r.get("role")),
                str(r.get("lifecycle", "")).upper(),
                f"{r.get('turns', 0)}/{mt if mt is not None else '?'}",
                "yes" if r.get("your_turn") else "no",
                str(r.get("result") or "-"),
                str(r.get("topic", "")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in table
    )


def info_text(info: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"clawroomd {info.get('version')}",
            f"Peer id:   {info.get('peer_id')}",
            f"Listening: {', '.join(info.get('listen') or []) or '-'}",
            f"State dir: {info.get('state_dir')}",
            f"Socket:    {info.get('socket')}",
            f"Rooms:     {info.get('rooms')} ({info.get('open_rooms')} open)",
        ]
    )
