"""The CLI's commands: each `cmd_<name>(cfg) -> exit code` is a thin layer over one or two API calls.

Errors are raised, never printed here: `clawroomd.cli.main.run` maps them to messages and exit codes.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from typing import Any

from clawroomd.client import Client, watch_events
from clawroomd.core.ids import is_room_id

from . import render
from .exits import EXIT_ERROR, EXIT_OK, CommandFailed, JoinURLError, UsageError
from .join_room import check_url_names_room
from .lan import cmd_approve, cmd_deny, cmd_peers, inbox_lines, join_by_room  # noqa: F401 (cmd_*: dispatched)
from .llm_agent import llm_params
from .options import Config
from .preflight import cmd_preflight as cmd_preflight
from .stats import cmd_stats as cmd_stats

CALL_TIMEOUT = 60.0  # seconds to wait for any one answer (join adds its own timeout)
RESULT_WAIT_MAX = 366 * 86400.0  # `result --wait` without --timeout: as long as the daemon allows
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# `create` without --field (the seed's `clawroom create --topic T --agents 2`): a room needs one field at least.
DEFAULT_FIELD = {"name": "outcome", "description": "what both sides agree on, in one line"}


def parse_duration(text: str, option: str) -> float:
    """30s, 10m, 2h, 3d (a bare number is seconds) -> seconds."""
    m = _DURATION_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"{option} {text!r} is not a duration like 30s, 10m, 2h or 3d")
    return float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]


def _client(cfg: Config, timeout: float | None = CALL_TIMEOUT) -> Client:
    return Client(cfg.socket, timeout=timeout)


def _out(cfg: Config, result: Any, text: str | None = None) -> int:
    if cfg.json:
        print(render.json_line(result), flush=True)
    elif text is not None:
        print(text, flush=True)
    return EXIT_OK


def _agent_argv(command: str | None, option: str = "--agent") -> list[str] | None:
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise UsageError(f"{option} {command!r}: {e}") from None
    if not argv:
        raise UsageError(f"{option} needs a command")
    return argv


def _room_commands(cfg: Config) -> dict[str, Any]:
    """create's and join's per-room commands and owner context, as room.create/room.join take them."""
    params: dict[str, Any] = llm_params(cfg)
    for text, option, key in (
        (cfg.agent, "--agent", "agent_command"),
        (cfg.notify, "--notify", "notify"),
        (cfg.deliver, "--deliver", "deliver_command"),
    ):
        if (argv := _agent_argv(text, option)) is not None:
            params[key] = argv
    if cfg.context is not None:
        params["context"] = cfg.context
    return params


def _base(cfg: Config, c: Client) -> int:
    """The seq a move is bound to (SPEC §15.7 `expect_seq`): --expect-seq, else the room as it is now,
    so a move is never applied to a later state than the one the command started from."""
    if cfg.expect_seq is not None:
        return int(cfg.expect_seq)
    return int(c.call("room.status", room_id=cfg.room)["seq"])


# ------------------------------------------------------------------------------------------------ create
def cmd_create(cfg: Config) -> int:
    if cfg.agents is not None and cfg.agents != 2:
        raise UsageError("a room always has two agents (the host's and the guest's); --agents can only be 2")
    fields: list[Any] = [] if cfg.fields else [DEFAULT_FIELD]
    for spec in cfg.fields:
        name, sep, description = spec.partition("=")
        fields.append({"name": name.strip(), "description": description.strip()} if sep else name.strip())
    params: dict[str, Any] = {
        "topic": cfg.topic,
        "goal": cfg.goal,
        "fields": fields,
        "max_turns": cfg.max_turns,
        "first": cfg.first,
        "label": cfg.label,
    }
    for text, option, key in (
        (cfg.turn_timeout, "--turn-timeout", "turn_timeout_s"),
        (cfg.deadline, "--deadline", "deadline_s"),
        (cfg.invite_ttl, "--invite-ttl", "invite_ttl_s"),
    ):
        if text:
            params[key] = parse_duration(text, option)
    if cfg.advertise:
        params["advertise"] = cfg.advertise
    if cfg.lan_join:
        params["lan_join"] = True
    params.update(_room_commands(cfg))
    with _client(cfg) as c:
        view = c.call("room.create", **params)
    url = view["join_url"]
    lines = [
        f"Room {view['room_id']} created; you are the host.",
        f"Topic: {render.safe(view['topic'])}",
        f"Fields: {', '.join(render.safe(f['name']) for f in view['fields'])} · max turns {view['max_turns']} · "
        f"first: {cfg.first}",
        f"Join URL: {url}",
        "",
        f"Send this link to the other owner: clawroom join '{url}'",
        f"Watch the room: clawroom watch --room {view['room_id']}",
    ]
    if not cfg.fields:
        lines.append("(No --field given: the room has the one field `outcome`; give --field NAME for each you need.)")
    if "&at=" not in url and "?at=" not in url:
        lines.append(
            "Warning: the link carries no address to dial (the daemon listens on an unspecified address such as "
            "0.0.0.0). Pass --advertise HOST:PORT here, or start clawroomd with --advertise HOST:PORT; "
            "on one LAN, daemons started with --lan find each other without it."
        )
    return _out(cfg, view, "\n".join(lines))


# -------------------------------------------------------------------------------------------------- join
def cmd_join(cfg: Config) -> int:
    if cfg.role == "host":
        raise UsageError("the host creates the room with `clawroom create`; `clawroom join` is for the guest")
    url = cfg.url or cfg.join_url
    if not url and cfg.room:
        return join_by_room(cfg, _room_commands(cfg))
    if not url:
        raise UsageError(
            "a join needs the join URL the host's `clawroom create` printed: clawroom join 'clawroom://join/...'"
        )
    if cfg.room:
        check_url_names_room(url, cfg.room)
    if is_room_id(url.strip()):
        raise JoinURLError(
            f"{url.strip()} is a room id, not a join URL; ask the host for the whole link "
            "(clawroom://join/<room>?peer=...&s=...)"
        )
    timeout = cfg.timeout or 30.0
    params: dict[str, Any] = {"join_url": url, "label": cfg.label, "timeout_s": timeout}
    params.update(_room_commands(cfg))
    with _client(cfg, timeout=timeout + 15) as c:
        view = c.call("room.join", **params)
    host = view["participants"]["host"]
    text = "\n".join(
        [
            f"Joined room {view['room_id']} as the guest.",
            f"Topic: {render.safe(view['topic'])}",  # the host's words
            f"Host: {render.short_id(host.get('peer_id'))} · status {str(view['lifecycle']).upper()} · "
            f"whose turn: {render.whose_turn(view)}",
            f"Watch the room: clawroom watch --room {view['room_id']}",
            *(f"Warning: {render.safe(w)}" for w in view.get("warnings", [])),
        ]
    )
    return _out(cfg, view, text)


# -------------------------------------------------------------------------------------------------- send
def cmd_send(cfg: Config) -> int:
    propose: dict[str, str] = {}
    for item in cfg.propose:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--propose {item!r} must be FIELD=VALUE")
        if name.strip() in propose:
            raise UsageError(f"--propose names {name.strip()!r} twice; one message moves each field once")
        propose[name.strip()] = value.strip()
    if not cfg.text and not (propose or cfg.accept or cfg.reject):
        raise UsageError("nothing to send: give --text and/or --propose/--accept/--reject")
    params: dict[str, Any] = {"room_id": cfg.room, "text": cfg.text}
    if propose:
        params["propose"] = propose
    if cfg.accept:
        params["accept"] = cfg.accept
    if cfg.reject:
        params["reject"] = cfg.reject
    if cfg.sid:
        params["sid"] = cfg.sid
    with _client(cfg) as c:
        result = c.call("room.send", **params, expect_seq=_base(cfg, c))
    if result.get("queued"):
        text = f"Queued ({render.safe(result.get('sid'))}): {render.safe(result.get('message'))}"
    else:
        ev = result["event"]
        moves = "".join(f"\n  {render.move_text(m)}" for m in ev["body"].get("moves", []))
        again = " (already sent earlier with this --sid)" if result.get("duplicate") else ""
        text = f"Sent event #{ev['seq']}{again}: {render.safe(ev['body'].get('text', ''))}{moves}"
    return _out(cfg, result, text)


# ------------------------------------------------------------------------------------------------ status
def cmd_status(cfg: Config) -> int:
    if cfg.watch:  # the live card: clawroomd/cli/live_view.py
        from .live_view import watch

        return watch(cfg.socket, cfg.room, as_json=cfg.json)
    with _client(cfg) as c:
        view = c.call("room.status", room_id=cfg.room)
    return _out(cfg, view, render.status_card(view))


# ------------------------------------------------------------------------------------------------- watch
def cmd_watch(cfg: Config) -> int:
    from_seq = max(cfg.from_seq, 0)
    with _client(cfg) as c:
        if cfg.json:
            for note in watch_events(c, cfg.room, after=from_seq - 1):
                print(render.json_line(note), flush=True)
            return EXIT_OK
        view = c.call("room.status", room_id=cfg.room)
        renderer = render.TranscriptRenderer(view["participants"])
        peer: bool | None = None
        for note in watch_events(c, cfg.room):  # from 0: the renderer needs the creation time
            method, params = note["method"], note["params"] or {}
            if method == "room.event":
                event = params["event"]
                text = renderer.line(event)
                if event["seq"] >= from_seq:
                    print(text, flush=True)
            elif method == "room.status":
                connected = params.get("peer_connected")
                if peer is not None and connected != peer:
                    pad = " " * (len(render.fmt_offset(0)) + renderer.width + 2)
                    print(f"{pad}(peer {'connected' if connected else 'disconnected'})", flush=True)
                peer = connected
    return EXIT_OK


# ----------------------------------------------------------------------------------------- small commands
def cmd_list(cfg: Config) -> int:
    with _client(cfg) as c:
        result = c.call("room.list")
    return _out(cfg, result, render.rooms_table(result["rooms"]))


def cmd_close(cfg: Config) -> int:
    with _client(cfg) as c:
        result = c.call("room.close", room_id=cfg.room, expect_seq=_base(cfg, c))
    if result.get("queued"):
        text = f"Queued: {render.safe(result.get('message'))}"
    else:
        ev = result["event"]
        if ev["kind"] == "close_accepted":
            text = f"Countersigned the close of {cfg.room}; the host now closes the room (see `clawroom result`)."
        else:
            out = ev["body"]["outcome"]
            text = (
                f"Proposed closing {cfg.room} as {render.safe(out['status'])} "
                f"({len(out['outcomes'])}/{len(out['outcomes']) + len(out['unresolved'])} outcomes agreed); "
                "waiting for the other side to countersign."
            )
    return _out(cfg, result, text)


def cmd_cancel(cfg: Config) -> int:
    with _client(cfg) as c:
        result = c.call("room.cancel", room_id=cfg.room, reason=cfg.reason)
    text = f"Queued: {render.safe(result.get('message'))}" if result.get("queued") else f"Cancelled room {cfg.room}."
    return _out(cfg, result, text)


def cmd_result(cfg: Config) -> int:
    if cfg.wait_timeout is not None and (not cfg.wait or cfg.wait_timeout <= 0):
        raise UsageError("--timeout goes with --wait and is a number of seconds above 0")
    wait = (cfg.wait_timeout or RESULT_WAIT_MAX) if cfg.wait else None
    with _client(cfg, timeout=None if wait is None else wait + CALL_TIMEOUT) as c:
        result = c.call("room.result", room_id=cfg.room, **({} if wait is None else {"wait_s": wait}))
        max_turns = None if cfg.json else c.call("room.status", room_id=cfg.room).get("max_turns")
    return _out(cfg, result, render.result_text(result, max_turns=max_turns))


def cmd_verify(cfg: Config) -> int:
    """Offline: no daemon, no trio (clawroomd.core.final_result, imported only here: it needs cryptography)."""
    from clawroomd.core.final_result import VerifyError, verify

    assert cfg.final_result is not None  # the parser requires it
    try:
        result = _read_file(cfg.final_result)
        transcript = None if cfg.transcript_file is None else _read_file(cfg.transcript_file)
        ok = verify(result, transcript)
    except VerifyError as err:
        if cfg.json:
            print(render.json_line({"ok": False, "where": err.where, "message": err.message}), flush=True)
        else:
            print(f"clawroom verify: FAILED at {render.safe(err.where)}: {render.safe(err.message)}", file=sys.stderr)
        return EXIT_ERROR
    return _out(
        cfg,
        {
            "ok": True,
            "room_id": ok.room_id,
            "status": ok.status,
            "agreed": ok.agreed,
            "unresolved": ok.unresolved,
            "events": ok.events,
            "signers": ok.signers,
            "transcript_lines": ok.transcript_lines,
            "ended_locally": ok.ended_locally,
        },
        render.safe(ok.summary()),  # agreed values are the peer's text too
    )


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None


def cmd_info(cfg: Config) -> int:
    with _client(cfg) as c:
        info = c.call("daemon.info")
    return _out(cfg, info, render.info_text(info))


def cmd_transcript(cfg: Config) -> int:
    with _client(cfg) as c:
        result = c.call("room.transcript", room_id=cfg.room)
        if cfg.json:
            return _out(cfg, result)
        view = c.call("room.status", room_id=cfg.room)
    lines = render.TranscriptRenderer(view["participants"]).lines(result["events"])
    return _out(cfg, result, "\n".join(lines))


# ----------------------------------------------------------------------------------------------- context
def _context_fields(cfg: Config) -> dict[str, Any]:
    """The context's fields: --from-file's object, then each option given on top of it."""
    fields: dict[str, Any] = {}
    if cfg.from_file is not None:
        try:
            with open(cfg.from_file, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as e:
            raise UsageError(f"--from-file {cfg.from_file}: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"--from-file {cfg.from_file} is not JSON text: {e}") from None
        if isinstance(doc, dict) and isinstance(doc.get("context"), dict) and "private_facts_notice" in doc:
            doc = doc["context"]  # the output of `context show --json`
        if not isinstance(doc, dict):
            raise UsageError(f"--from-file {cfg.from_file} must hold a JSON object (keys: owner_name, role, ...)")
        fields.update(doc)
    given = {
        "owner_name": cfg.owner_name,
        "role": cfg.owner_role,
        "task_context": cfg.task_context,
        "language": cfg.language,
        "goals": cfg.goals,
        "constraints": cfg.constraints,
        "priorities": cfg.priorities,
        "confirmed_facts": cfg.confirmed_facts,
        "private_facts": cfg.private_facts,
        "limits": cfg.limits,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    return fields


def _context_target(cfg: Config) -> dict[str, Any]:
    if cfg.room:
        return {"room_id": cfg.room}
    return {"profile": cfg.profile} if cfg.profile is not None else {}


def cmd_context(cfg: Config) -> int:
    with _client(cfg) as c:
        if cfg.context_action == "show":
            result = c.call("context.show", **_context_target(cfg))
            return _out(cfg, result, render.context_text(result))
        fields = _context_fields(cfg)
        if not fields and not cfg.replace:
            raise UsageError("nothing to write: give --owner-name, --goal, ... or --from-file")
        result = c.call("context.write", **_context_target(cfg), fields=fields, replace=cfg.replace)
    where = f"room {result['room_id']}" if result.get("room_id") else f"profile {result['profile']}"
    text = f"{'Wrote' if result.get('created') else 'Updated'} the owner context of {where} ({result['path']}).\n"
    return _out(cfg, result, text + render.context_text(result))


# -------------------------------------------------------------------------------- inbox, answer
def cmd_inbox(cfg: Config) -> int:
    with _client(cfg) as c:
        result = c.call("owner.inbox")
    lines = [
        f"{q['room_id']} {q['question_id']}: {render.safe(q['question'])}"
        + (f" [options: {', '.join(render.safe(o) for o in q['options'])}]" if q.get("options") else "")
        + (f" ({render.safe(q['field'])}={render.safe(q['value'])})" if q.get("field") else "")
        for q in result["questions"]
    ]
    asked = bool(lines)
    lines += inbox_lines(result)
    text = "\n".join(lines) if lines else "No questions waiting."
    if asked:
        text += "\nAnswer with: clawroom answer --room ID --approve|--reject [TEXT]"
    return _out(cfg, result, text)


def cmd_answer(cfg: Config) -> int:
    if cfg.approve == cfg.reject_question:
        raise UsageError("say --approve or --reject (one of them)")
    with _client(cfg) as c:
        result = c.call("room.answer", room_id=cfg.room, approved=cfg.approve, text=cfg.answer_text)
    verdict = "Approved" if result["approved"] else "Rejected"
    return _out(cfg, result, f"{verdict} question {result['question_id']} of room {cfg.room}; the agent goes on.")


def cmd_demo(cfg: Config) -> int:
    from .demo import run_demo

    return run_demo(keep=cfg.keep, as_json=cfg.json)


def cmd_mcp(cfg: Config) -> int:
    from clawroomd import mcp_server

    if not mcp_server.sdk_available():
        raise CommandFailed(mcp_server.INSTALL_HINT)
    mcp_server.serve(cfg.socket)
    return EXIT_OK
