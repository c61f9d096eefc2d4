"""The local API's methods (JSON-RPC over the Unix socket): parameter checking and dispatch.

Every method and its parameters are documented in protocol/SPEC.md, "Local API".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

import clawroomd

from ..core.errors import LocalProtocolError
from ..core.events import FieldSpec, RoomCreated
from ..core.identity import Identity
from ..core.joinurl import JoinURL
from .agent_turn import check_agent_env
from .clock import now_ms
from .config import DaemonConfig
from .context_api import ContextMethods
from .delivery import Delivery
from .errors import ApiError, core_refusal_is_bad_value
from .lan_api import LanApi
from .leak_check import LeakCheck
from .live import LiveRoom
from .moves import Moves
from .owner_checks import check_limits_for_fields
from .questions import Questions
from .results import RESULT_FILE, SUMMARY_FILE, Results
from .rooms import Rooms
from .views import lifecycle, list_row, result_view, status_view

if TYPE_CHECKING:
    from .rpc import Session

DEFAULT_TURN_TIMEOUT_S = 3600
DEFAULT_DEADLINE_S = 24 * 3600
DEFAULT_ANSWER_TIMEOUT_S = 2 * 3600
WATCH_PAGE = 64  # events a watcher takes from the room's log at a time


def _bad(message: str) -> ApiError:
    return ApiError("invalid_params", message)


def _get(
    params: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ..., *, what: str = ""
) -> Any:
    if name not in params or params[name] is None:
        if default is ...:
            raise _bad(f"missing parameter {name!r}{what}")
        return default
    value = params[name]
    if not isinstance(value, kind) or (
        isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise _bad(f"parameter {name!r} has the wrong type")
    return value


def _out_of_range(message: str) -> ApiError:
    return ApiError("bad_value", message)


def _seconds(params: dict[str, Any], name: str, default: float | None) -> int | None:
    """A duration parameter in whole milliseconds (None when absent and no default)."""
    value = _get(params, name, (int, float), default)
    if value is None:
        return None
    # Under 1 ms would round to 0, which callers read as "not given" (an invite TTL became 72 h).
    if not 0.001 <= value <= 366 * 86400:
        raise _out_of_range(f"{name} must be a number of seconds from 0.001 to 366 days, not {value!r}")
    return int(value * 1000)


def _not_unicode(params: dict[str, Any]) -> str | None:
    """The name of the first parameter holding text that is not Unicode (a lone surrogate, which JSON's
    \\uXXXX escapes can express), or None. Iterative: nesting depth is the client's choice."""
    stack: list[tuple[str, Any]] = [(name, value) for name, value in params.items()]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return name
        elif isinstance(value, dict):
            stack.extend((name, k) for k in value)
            stack.extend((name, v) for v in value.values())
        elif isinstance(value, list):
            stack.extend((name, v) for v in value)
    return None


def _argv(params: dict[str, Any], name: str) -> list[str] | None:
    """A command parameter: an argv list (run without a shell), or None when not given."""
    command = _get(params, name, list, None)
    if command is not None and (not command or not all(isinstance(a, str) and a for a in command)):
        raise _bad(f"{name} is a non-empty list of strings (argv)")
    return command


class Join(Protocol):
    """How a join URL becomes a guest room (guest_side.GuestSide.join)."""

    def __call__(self, url: JoinURL, *, label: str, meta: dict[str, Any], timeout: float) -> Awaitable[LiveRoom]: ...


class Api:
    """The local API's methods, each handed only what it needs: the rooms, our moves, the join, the
    owner contexts (context.*, and the copy into a new room), and the daemon's facts for daemon.info."""

    def __init__(
        self,
        rooms: Rooms,
        moves: Moves,
        *,
        join: Join,
        contexts: ContextMethods,
        leaks: LeakCheck,
        questions: Questions,
        identity: Identity,
        config: DaemonConfig,
        listen: Callable[[], list[str]],
        results: Results,
        delivery: Delivery,
        lan: LanApi,
        agent_env: Callable[[str, dict[str, str] | None], None] = lambda room_id, env: None,
    ) -> None:
        self.agent_env = agent_env  # AgentRunner.set_env: a room's agent_env, kept in memory only
        self.lan = lan
        self.results = results
        self.delivery = delivery
        self.rooms = rooms
        self.moves = moves
        self.join = join
        self.contexts = contexts
        self.leaks = leaks
        self.questions = questions
        self.identity = identity
        self.config = config
        self.listen = listen
        self.methods: dict[str, Callable[[dict[str, Any], Session], Awaitable[Any]]] = {
            "daemon.info": self.daemon_info,
            "room.create": self.room_create,
            "room.join": self.room_join,
            "room.list": self.room_list,
            "room.status": self.room_status,
            "room.transcript": self.room_transcript,
            "room.send": self.room_send,
            "room.watch": self.room_watch,
            "room.close": self.room_close,
            "room.cancel": self.room_cancel,
            "room.result": self.room_result,
            "room.ask_owner": self.room_ask_owner,
            "room.answer": self.room_answer,
            "room.answers": self.room_answers,
            "owner.inbox": self.owner_inbox,
            "room.summary": self.room_summary,
            **contexts.methods,
            **lan.methods,
        }

    async def handle(self, method: str, params: dict[str, Any], session: Session) -> Any:
        fn = self.methods.get(method)
        if fn is None:
            raise ApiError("method_not_found", f"unknown method {method!r}; methods: {', '.join(sorted(self.methods))}")
        if (name := _not_unicode(params)) is not None:
            raise ApiError("bad_value", f"parameter {name!r} holds text that is not valid Unicode (a lone surrogate)")
        return await fn(params, session)

    def _room(self, params: dict[str, Any]) -> LiveRoom:
        return self.rooms.get(_get(params, "room_id", str))

    async def daemon_info(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return {
            "peer_id": self.identity.peer_id,
            "version": clawroomd.__version__,
            "listen": self.listen(),
            # what a join URL carries by default (empty: a 0.0.0.0 listener and no --advertise setting)
            "advertise": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self._advertise({})],
            "state_dir": str(self.config.state_dir),
            "socket": str(self.config.socket_path),
            "rooms": len(self.rooms),
            "open_rooms": sum(1 for r in self.rooms if not r.closed),
            "storage": self.rooms.store.health,
            "damaged_rooms": sorted(self.rooms.damaged),
            "lan": self.lan.info(),
        }

    def _advertise(self, params: dict[str, Any]) -> list[tuple[str, int]]:
        given = _get(params, "advertise", list, None)
        texts = given if given is not None else list(self.config.advertise or self.listen())
        out = []
        for text in texts:
            if not isinstance(text, str) or ":" not in text:
                raise _bad(f"advertise address {text!r} must be host:port")
            host, _, port = text.rpartition(":")
            host = host.strip("[]")
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise _bad(f"advertise address {text!r} has a bad port")
            try:
                if ipaddress.ip_address(host).is_unspecified:
                    continue  # 0.0.0.0 / :: cannot be dialled; name a real address with advertise
            except ValueError:
                pass
            out.append((host, int(port)))
        return out

    async def room_create(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        raw_fields = _get(params, "fields", list, what=' (the required outcome fields, e.g. ["price"])')
        fields = []
        for f in raw_fields:
            with core_refusal_is_bad_value():
                if isinstance(f, str):
                    fields.append(FieldSpec(name=f))
                elif isinstance(f, dict) and isinstance(f.get("name"), str):
                    fields.append(FieldSpec(name=f["name"], description=str(f.get("description", ""))))
                else:
                    raise _bad('each field is a name or {"name": ..., "description": ...}')
        now = now_ms()
        deadline = _seconds(params, "deadline_s", DEFAULT_DEADLINE_S)
        with core_refusal_is_bad_value():
            spec = RoomCreated(
                label=_get(params, "label", str, ""),
                topic=_get(params, "topic", str),
                goal=_get(params, "goal", str, ""),
                fields=tuple(fields),
                max_turns=_get(params, "max_turns", int, 20),
                first=_get(params, "first", str, "host"),
                turn_timeout_ms=_seconds(params, "turn_timeout_s", DEFAULT_TURN_TIMEOUT_S),
                deadline_ms=None if deadline is None else now + deadline,
                answer_timeout_ms=_seconds(params, "answer_timeout_s", DEFAULT_ANSWER_TIMEOUT_S),
            )
        meta: dict[str, Any] = {"topic": spec.topic}
        if _get(params, "lan_join", bool, False):
            meta["lan_join"] = True  # the owner may admit a guest who asks by room id (SPEC §13.11)
        self._commands(params, meta)
        env = check_agent_env(params)
        owner = self.contexts.for_new_room(params)
        if owner is not None:
            check_limits_for_fields(list(owner.limits), spec.field_names)
            self.leaks.facts(owner.private_facts, spec)  # the topic, goal and fields reach the guest too
        live = await self.moves.create_room(
            spec, advertise=self._advertise(params), meta=meta, ttl_ms=_seconds(params, "invite_ttl_s", None)
        )
        if owner is not None:  # the host's agent has no turn before the guest joins: the copy is in time
            self.contexts.copy_into(live.room_id, owner)
        if env is not None:  # in time for the same reason
            self.agent_env(live.room_id, env)
        view = status_view(live)
        view["join_url"] = live.meta["join_url"]
        return view

    async def room_join(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        url = None
        if params.get("join_url") is not None or params.get("room_id") is None:
            try:
                url = JoinURL.parse(_get(params, "join_url", str, what=" (or room_id, to ask on the LAN)"))
            except LocalProtocolError as err:
                raise ApiError("bad_join_url", err.message) from None
            if url.host_peer_id == self.identity.peer_id:
                raise ApiError("conflict", "that join URL is for a room this daemon hosts; the guest needs a daemon")
        room_id = url.room_id if url is not None else _get(params, "room_id", str)
        if (here := self.rooms.lookup(room_id)) is not None and here.role == "host":
            raise ApiError("conflict", "this daemon is the host of that room; a room needs two daemons")
        meta: dict[str, Any] = {}
        self._commands(params, meta)
        env = check_agent_env(params)
        timeout = float(_get(params, "timeout_s", (int, float), 30))
        if not 0 < timeout <= 3600:
            raise _out_of_range(f"timeout_s must be a number of seconds above 0 and at most 3600, not {timeout!r}")
        owner = self.contexts.for_new_room(params)
        label = _get(params, "label", str, "")
        if owner is not None:
            self.leaks.facts(owner.private_facts, label)  # `joined` carries it to the host
        fresh = owner is not None and room_id not in self.rooms
        if fresh:  # in place before `joined` can wake our agent (a guest may move first)
            assert owner is not None
            self.contexts.copy_into(room_id, owner)
        if env is not None:  # before `joined` can wake our agent, like the context
            self.agent_env(room_id, env)

        def take_back() -> None:
            if fresh and room_id not in self.rooms:
                self.contexts.take_back(room_id)
            if env is not None and room_id not in self.rooms:
                self.agent_env(room_id, None)

        if url is None and here is not None:
            return status_view(here)  # joined already
        if url is None:
            view = await self.lan.join_room(params, label=label, meta=meta, timeout=timeout, on_fail=take_back)
            if "lifecycle" not in view:
                return view  # wait=false: the request's state (pending, with the SAS)
        else:
            try:
                live = await self.join(url, label=label, meta=meta, timeout=timeout)
            except BaseException:
                take_back()
                raise
            view = status_view(live)
        live = self.rooms.get(room_id)
        if owner is not None and live.state.spec is not None:
            # The host's fields are known only now: a limit on another field can never apply. Say so.
            try:
                check_limits_for_fields(list(owner.limits), live.state.spec.field_names)
            except ApiError as err:
                view["warnings"] = [err.message + "; change it with `clawroom context write --room`"]
        return view

    def _commands(self, params: dict[str, Any], meta: dict[str, Any]) -> None:
        """The room's commands: its agent (`agent_command`), the owner's question hook (`notify`) and its
        delivery hook (`deliver_command`); the last two default to the daemon's config (`notify`, `deliver`)."""
        defaults = {"notify": self.config.notify, "deliver_command": self.config.deliver}
        for name in ("agent_command", "notify", "deliver_command"):
            command = _argv(params, name)
            if command is None and defaults.get(name):
                command = list(defaults[name])
            if command is not None:
                meta[name] = command

    async def room_ask_owner(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        return await self.questions.ask(
            live, params.get("question"), params.get("options"), params.get("field"), params.get("value")
        )

    async def room_answer(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        approved = _get(params, "approved", bool, what=" (true: approve, false: reject)")
        return await self.questions.answer(live, approved=approved, text=params.get("text"))

    async def room_answers(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        """The room's pending question and its owner's answers, for an agent the daemon does not run (an
        agent command gets the answers in its document)."""
        live = self._room(params)
        pending = self.questions.pending.get(live.room_id)
        return {"room_id": live.room_id, "pending": pending, "answers": self.questions.answers(live.room_id)}

    async def owner_inbox(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return {"questions": self.questions.inbox(), **self.lan.inbox()}

    async def room_list(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return {"rooms": [list_row(live) for live in self.rooms]}

    async def room_status(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        return status_view(self._room(params))

    async def room_transcript(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        after = _get(params, "after", int, -1)
        return {"room_id": live.room_id, "events": [e.to_json() for e in live.core.events_after(after)]}

    def _base(self, live: LiveRoom, params: dict[str, Any]) -> int:
        """The seq a move is bound to (DESIGN §4): the caller's `expect_seq` (the last event it saw),
        else the room as this call found it. The move is refused with `stale_state` unless the room is
        still there when it is signed; nothing is ever re-signed on a later state."""
        seq = live.state.seq
        expect = _get(params, "expect_seq", int, None)
        if expect is None:
            return seq
        if expect < -1:
            raise _bad("expect_seq is the seq of the last event you saw (-1: none)")
        if expect > seq:
            raise ApiError("bad_value", f"expect_seq {expect} is ahead of this room (its last event is #{seq})")
        return int(expect)

    @staticmethod
    def _raw_moves(params: dict[str, Any]) -> list[Any]:
        """`moves` (full form) plus the CLI's shorthands `propose`, `accept`, `reject`."""
        raw = list(_get(params, "moves", list, []))
        for name, value in dict(_get(params, "propose", dict, {})).items():
            raw.append({"op": "propose", "field": name, "value": value})
        for name in _get(params, "accept", list, []):
            raw.append({"op": "accept", "field": name})
        for name in _get(params, "reject", list, []):
            raw.append({"op": "reject", "field": name})
        return raw

    async def room_send(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        text = _get(params, "text", str, "")
        base = self._base(live, params)
        sid = _get(params, "sid", str, None)
        return await self.moves.send(live, text, self._raw_moves(params), expect_seq=base, client_sid=sid)

    async def room_close(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        base = self._base(live, params)  # the close countersigned or proposed is the one in that state
        return await self.moves.submit(live, lambda: self.moves.close_body(live), expect_seq=base)

    async def room_cancel(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        if live.closed:
            raise ApiError("room_closed", "the room is already closed")
        return await self.moves.cancel(live, _get(params, "reason", str, ""))

    async def room_result(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        wait = _seconds(params, "wait_s", None)
        if wait is not None:  # until the result files are written (they follow the close at once)
            with trio.move_on_after(wait / 1000):
                await self.results.event(live.room_id).wait()
        result = result_view(live)
        if result is None:
            raise ApiError(
                "not_ready",
                "the room is still open; `clawroom watch` waits for it to close",
                {"lifecycle": status_view(live)["lifecycle"]},
            )
        written = self.results.event(live.room_id).is_set()
        if wait is not None and not written:
            raise ApiError(
                "not_ready", "the room closed; its result files are not yet written", {"lifecycle": "closed"}
            )
        folder = self.rooms.store.room_dir(live.room_id)
        files = {"final_result": str(folder / RESULT_FILE), "summary": str(folder / SUMMARY_FILE)} if written else None
        return {
            "room_id": live.room_id,
            "role": live.role,
            "topic": status_view(live)["topic"],
            **result,
            "files": files,  # this daemon's own, like `delivery` (the rest both sides report alike)
            "delivery": self.delivery.state(live.room_id) if live.meta.get("deliver_command") else None,
        }

    async def room_summary(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        """The agent's own summary for its owner, put at the top of summary.md (never sent to the peer)."""
        live = self._room(params)
        path = self.results.set_agent_summary(live, _get(params, "text", str))
        return {"room_id": live.room_id, "path": str(path), "written": live.closed}

    async def room_watch(self, params: dict[str, Any], session: Session) -> dict[str, Any]:
        live = self._room(params)
        after = _get(params, "after", int, -1)
        if after < -1:
            raise _out_of_range(f"after must be a sequence number, or -1 for the whole room, not {after}")
        session.start_soon(self._stream, live, after, session)
        return {"room_id": live.room_id, "subscribed": True, "seq": live.state.seq}

    async def _stream(self, live: LiveRoom, after: int, session: Session) -> None:
        """Notifications: room.event per event (from `after`), room.your_turn when we are awaited,
        room.status when link or lifecycle changes, room.closed once at the end.

        Events are paced (each waits while more than PACE_BYTES of this connection's output is unread), so
        a watcher that does not read holds only its place in the room's log, never a copy of it."""
        seq, turn_sent, last = after, -2, None
        while not session.closed:
            changed = live.changed
            while page := live.core.log[seq + 1 : seq + 1 + WATCH_PAGE]:  # the log's index is the seq
                for event in page:
                    note = {"room_id": live.room_id, "event": event.to_json()}
                    if not await session.notify("room.event", note, paced=True):
                        return
                    seq = event.header.seq
            brief = (live.link_up, lifecycle(live))
            if brief != last:
                last = brief
                await session.notify(
                    "room.status",
                    {"room_id": live.room_id, "peer_connected": brief[0], "lifecycle": brief[1], "seq": seq},
                )
            if live.state.seq != seq:
                continue  # events landed while we sent the status: they go first, then whose turn it is
            if live.our_turn and turn_sent != seq:
                turn_sent = seq
                await session.notify(
                    "room.your_turn",
                    {
                        "room_id": live.room_id,
                        "seq": seq,
                        "awaiting": sorted(live.awaiting()),
                        "phase": live.state.phase,
                    },
                )
            if live.closed:
                await session.notify("room.closed", {"room_id": live.room_id, "result": result_view(live)})
                return
            await changed.wait()
