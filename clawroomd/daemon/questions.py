"""Escalation: the agent asks its owner, the room waits, the owner answers (issue 9 item 4, SPEC §15.7).

    rooms/<id>/pending_question.json   the one open question (0600), removed when answered or expired
    rooms/<id>/answers.json            every answered question, kept for provenance and the summary

The peer learns only that this side is consulting (`consult_started` / `consult_ended`, empty bodies);
the question, its options and the answer never leave this machine.

Order of writes, so a crash loses nothing acknowledged: the question file is written before
`consult_started` is signed (a refused consult removes it again); an answer is recorded and the question
file removed before `consult_ended` is signed. A room still consulting with no question file (a crash
between the two, or a refused `consult_ended`) is ended by `watch`, which also applies the expiry.

Expiry policy: a question expires `question_timeout` seconds after it was asked, but never later than
EXPIRY_SHARE of the room's answer timeout, so the daemon ends the consultation itself before the host's
answer timeout would end the room. An expired question counts as a rejection (`expired: true`) and the
room goes on.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from ..core.events import ConsultEnded, ConsultStarted
from .clock import now_ms
from .errors import ApiError
from .live import LiveRoom
from .moves import Moves
from .store import StorageFailed, Store, describe

log = logging.getLogger("clawroomd.questions")

PENDING_FILE = "pending_question.json"
ANSWERS_FILE = "answers.json"
EXPIRY_SHARE = 0.8  # of the room's answer_timeout: the daemon's expiry comes first, the room goes on
MAX_QUESTION = 4000
MAX_OPTIONS = 16
MAX_ANSWER = 4000
NOTIFY_TIMEOUT_S = 30.0


def _text(value: object, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ApiError("invalid_params", f"missing parameter {name!r}")
        return None
    if not isinstance(value, str):
        raise ApiError("invalid_params", f"parameter {name!r} has the wrong type")
    if not value.strip():
        raise ApiError("bad_value", f"{name} is empty: say what you need from your owner")
    if len(value) > limit:
        raise ApiError("bad_value", f"{name} is longer than {limit} characters")
    return value


class Questions:
    """Each room's pending question and answers. `timeout_s` is `[tuning] question_timeout`."""

    def __init__(self, store: Store, moves: Moves, *, timeout_s: float) -> None:
        self.store = store
        self.moves = moves
        self.timeout_s = timeout_s
        self.pending: dict[str, dict[str, Any]] = {}
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._to_end: set[str] = set()  # rooms whose answered question's consult_ended is not in yet
        self._poked: dict[str, trio.Event] = {}  # room id -> set when `watch` has work (a question, an end)
        self.spawn: Callable[..., Any] = lambda *a: None  # a nursery's start_soon, set by the wiring

    # -- reading
    def attach(self, live: LiveRoom) -> None:
        """A room opens: read its question and answers back (a restart keeps both)."""
        rid = live.room_id
        doc = self._read(rid, PENDING_FILE)
        if isinstance(doc, dict) and doc.get("room_id") == rid:
            self.pending[rid] = doc
        answers = self._read(rid, ANSWERS_FILE)
        self._answers[rid] = answers if isinstance(answers, list) else []
        if rid not in self.pending and self._answers[rid] and live.role in live.state.consulting:
            self._to_end.add(rid)  # answered, then the daemon stopped before consult_ended was signed

    def answers(self, room_id: str) -> list[dict[str, Any]]:
        return list(self._answers.get(room_id, []))

    def for_summary(self, room_id: str) -> list[dict[str, Any]]:
        """The room's answered questions as summary.md lists them: {question, answer}."""
        out = []
        for a in self._answers.get(room_id, []):
            if a.get("approved"):
                verdict = "approved"
            else:
                verdict = "expired, taken as a rejection" if a.get("expired") else "rejected"
            said = f": {a['text']}" if a.get("text") else ""
            out.append({"question": a.get("question", ""), "answer": verdict + said})
        return out

    def answer_by_id(self, room_id: str, question_id: str) -> dict[str, Any] | None:
        return next((a for a in self._answers.get(room_id, []) if a.get("question_id") == question_id), None)

    def inbox(self) -> list[dict[str, Any]]:
        return sorted(self.pending.values(), key=lambda q: (q["asked_at"], q["room_id"]))

    def check_not_pending(self, room_id: str, what: str) -> None:
        q = self.pending.get(room_id)
        if q is not None:
            raise ApiError(
                "pending_question",
                f"{what} waits for your owner's answer to question {q['question_id']} "
                "(`clawroom inbox`, `clawroom answer`); reading the room works meanwhile",
                {"question_id": q["question_id"], "expires_at": q["expires_at"]},
            )

    # -- asking
    async def ask(
        self, live: LiveRoom, question: object, options: object, field: object, value: object
    ) -> dict[str, Any]:
        q_text = _text(question, "question", MAX_QUESTION, required=True)
        if options is None:
            opts: list[str] = []
        elif isinstance(options, list) and all(isinstance(o, str) for o in options):
            if len(options) > MAX_OPTIONS:
                raise ApiError("bad_value", f"at most {MAX_OPTIONS} options")
            opts = [str(_text(o, "each option", 500)) for o in options]
        else:
            raise ApiError("invalid_params", "options is a list of texts")
        f = _text(field, "field", 200)
        v = _text(value, "value", 1000)
        st = live.state
        if live.closed:
            raise ApiError("room_closed", "the room is closed; there is nothing left to ask about")
        if f is not None and (st.spec is None or f not in st.spec.field_names):
            names = ", ".join(st.spec.field_names) if st.spec else ""
            raise ApiError("unknown_field", f"{f!r} is not a field of this room (fields: {names})")
        self.check_not_pending(live.room_id, "another question")
        asked = now_ms()
        expires = asked + int(self._expiry_s(live) * 1000)
        doc = {
            "question_id": "q_" + secrets.token_hex(8),
            "room_id": live.room_id,
            "question": q_text,
            "options": opts,
            "field": f,
            "value": v,
            "asked_at": asked,
            "expires_at": expires,
        }
        self._write(live.room_id, PENDING_FILE, doc)
        self.pending[live.room_id] = doc
        self._poke(live.room_id)
        try:
            await self.moves.submit(live, ConsultStarted)
        except BaseException:
            self.pending.pop(live.room_id, None)
            self._remove(live.room_id)
            raise
        live.bump()
        self.spawn(self._notify, live, doc)
        return dict(doc)

    def _expiry_s(self, live: LiveRoom) -> float:
        spec = live.state.spec
        limit = self.timeout_s
        if spec is not None and spec.answer_timeout_ms is not None:
            limit = min(limit, spec.answer_timeout_ms / 1000 * EXPIRY_SHARE)
        return limit

    async def _notify(self, live: LiveRoom, doc: dict[str, Any]) -> None:
        """The owner's notify hook: the question on stdin. A failing hook is logged, never fatal."""
        argv = live.meta.get("notify")
        if not argv:
            return
        try:
            with trio.fail_after(NOTIFY_TIMEOUT_S):
                await trio.run_process(argv, stdin=json.dumps(doc).encode(), capture_stdout=True, capture_stderr=True)
        except (OSError, trio.TooSlowError) as err:
            log.warning("room %s: notify hook failed (%s); the question waits in the inbox", live.room_id, err)
        except Exception as err:  # a hook is the owner's program: it must never end the room
            log.warning("room %s: notify hook failed (%s)", live.room_id, err)

    # -- answering
    async def answer(self, live: LiveRoom, *, approved: bool, text: object) -> dict[str, Any]:
        t = _text(text, "text", MAX_ANSWER) if text is not None and text != "" else ""
        q = self.pending.get(live.room_id)
        if q is None:
            last = self._answers.get(live.room_id, [])
            why = (
                f"; question {last[-1]['question_id']} was already "
                + ("expired" if last[-1].get("expired") else "answered")
                if last
                else ""
            )
            raise ApiError(
                "no_question", f"room {live.room_id} has no pending question{why}", {"room_id": live.room_id}
            )
        if now_ms() >= q["expires_at"]:
            await self._close(live, q, approved=False, text="", expired=True)
            raise ApiError(
                "no_question",
                f"question {q['question_id']} expired before the answer came (treated as a rejection)",
                {"room_id": live.room_id, "question_id": q["question_id"]},
            )
        return await self._close(live, q, approved=approved, text=str(t), expired=False)

    async def _close(
        self, live: LiveRoom, q: Mapping[str, Any], *, approved: bool, text: str, expired: bool
    ) -> dict[str, Any]:
        rid = live.room_id
        record = {**q, "approved": approved, "text": text, "expired": expired, "answered_at": now_ms()}
        answers = [*self._answers.get(rid, []), record]
        self._write(rid, ANSWERS_FILE, answers)  # recorded before anything else changes
        self._answers[rid] = answers
        self._remove(rid)
        self.pending.pop(rid, None)
        self._to_end.add(rid)
        self._poke(rid)
        live.bump()
        await self._end_consult(live)
        return record

    async def _end_consult(self, live: LiveRoom) -> None:
        if live.closed or live.role not in live.state.consulting:
            self._to_end.discard(live.room_id)
            return
        try:
            await self.moves.submit(live, ConsultEnded)
            self._to_end.discard(live.room_id)
        except ApiError as err:  # the room ended meanwhile, or the disk: `watch` tries again
            log.warning("room %s: consult_ended not added yet: %s", live.room_id, err.message)

    async def watch(self, live: LiveRoom) -> None:
        """Apply the expiry, and end a consultation left without a question (a crash in between)."""
        try:
            await self._watch(live)
        finally:
            self._poked.pop(live.room_id, None)

    def _poke(self, room_id: str) -> None:
        if (poke := self._poked.get(room_id)) is not None:
            poke.set()

    async def _watch(self, live: LiveRoom) -> None:
        while not live.closed:
            changed = live.changed
            q = self.pending.get(live.room_id)
            if q is None:
                if live.room_id in self._to_end:
                    await self._end_consult(live)
                    if live.room_id in self._to_end:
                        with trio.move_on_after(1.0):
                            await changed.wait()
                        continue
                # Nothing to expire or end: sleep until a question is asked or answered, or the room
                # ends, not at every event of the room.
                poke = self._poked[live.room_id] = trio.Event()
                await live.wait_closed_or(poke)
                continue
            delay = (q["expires_at"] - now_ms()) / 1000
            if delay > 0:
                with trio.move_on_after(delay):
                    await changed.wait()
                continue
            log.info("room %s: question %s expired: treated as a rejection", live.room_id, q["question_id"])
            await self._close(live, q, approved=False, text="", expired=True)

    # -- files
    def _write(self, room_id: str, name: str, doc: Any) -> None:
        try:
            self.store.write_room_file(room_id, name, (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode())
        except OSError as err:
            raise StorageFailed(describe(err), self.store.room_dir(room_id) / name) from None

    def _remove(self, room_id: str) -> None:
        try:
            self.store.remove_room_file(room_id, PENDING_FILE)
        except OSError as err:
            log.error("room %s: could not remove %s: %s", room_id, PENDING_FILE, err)

    def _read(self, room_id: str, name: str) -> Any:
        path: Path = self.store.room_dir(room_id) / name
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.error("room %s: %s is unreadable (%s); ignored", room_id, path, err)
            return None
