"""The owner's checks at the last step before our daemon signs (issue 9 items 3-5, SPEC §15.7), in order:

1. a pending question to the owner holds our messages and closes (`pending_question`);
2. provenance: each ref of a move names something that exists (`bad_provenance`):
   `event:<seq>` an event of this room holding the move's value, `fact:<id>` one of this owner's
   confirmed facts, `answer:<question_id>` one of this owner's answered questions;
3. authority limits: a propose or accept crossing one of the room's limits, or whose value cannot be read
   against it, needs an approving answer cited as `answer:<question_id>` (`needs_owner_approval`);
4. the leak guard (leak_check.LeakCheck).

Refs travel to the peer as ids only; the fact's and answer's texts stay here.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from ..core.events import Body, CloseAccepted, CloseProposed, Message, Move
from ..owner.limits import Limit, LimitError, check, parse_limit
from ..owner.numbers import parse_amount
from .errors import ApiError
from .leak_check import LeakCheck, peer_visible_strings
from .live import LiveRoom
from .questions import Questions


def _bad_ref(ref: str, why: str) -> ApiError:
    return ApiError(
        "bad_provenance",
        f"ref {ref!r} {why}; a ref is event:<seq>, fact:<id> or answer:<question_id> and must exist. "
        "Nothing was sent.",
        {"ref": ref},
    )


def _same_value(a: str, b: str) -> bool:
    if a.strip().casefold() == b.strip().casefold():
        return True
    x: Decimal | None = parse_amount(a)
    return x is not None and x == parse_amount(b)


class OwnerChecks:
    def __init__(
        self,
        *,
        lookup: Callable[[str], LiveRoom | None],
        questions: Questions,
        confirmed_facts: Callable[[str], dict[str, str]],
        limits: Callable[[str], list[str]],
        leaks: LeakCheck,
    ) -> None:
        self.lookup = lookup
        self.questions = questions
        self.confirmed_facts = confirmed_facts
        self.limits = limits
        self.leaks = leaks

    def __call__(self, room_id: str, body: Body | str) -> None:
        if isinstance(body, Message | CloseProposed | CloseAccepted):
            self.questions.check_not_pending(room_id, "sending" if isinstance(body, Message) else "closing")
        if isinstance(body, Message) and body.moves:
            live = self.lookup(room_id)
            for move in body.moves:
                self._provenance(room_id, live, move)
                self._authority(room_id, move)
        self.leaks.room(room_id, body)

    def _provenance(self, room_id: str, live: LiveRoom | None, move: Move) -> None:
        for ref in move.refs:
            kind, _, ident = ref.partition(":")
            if kind == "event":
                if live is None or not ident.isdigit() or int(ident) > live.state.seq:
                    raise _bad_ref(ref, "names no event of this room")
                event = live.core.log[int(ident)]
                if move.value is not None and not any(
                    move.value.casefold() in s.casefold() or _same_value(move.value, s)
                    for s in peer_visible_strings(event.body)
                ):
                    raise _bad_ref(ref, f"names event #{ident}, which does not hold the value {move.value!r}")
            elif kind == "fact":
                if ident not in self.confirmed_facts(room_id):
                    raise _bad_ref(ref, "names no confirmed fact of your owner's context")
            elif kind == "answer":
                if self.questions.answer_by_id(room_id, ident) is None:
                    raise _bad_ref(ref, "names no answered question of your owner")
            else:
                raise _bad_ref(ref, "is of no known kind")

    def _authority(self, room_id: str, move: Move) -> None:
        if move.op not in ("propose", "accept") or move.value is None:
            return
        for text in self.limits(room_id):
            try:
                limit = parse_limit(text)
            except LimitError as err:
                raise ApiError("bad_context", f"the room's limit {text!r} cannot be read: {err}") from None
            if limit.field != move.field:
                continue
            verdict = check(limit, move.value)
            if verdict is True or self._approved(room_id, move):
                continue
            why = "crosses" if verdict is False else "cannot be read against"
            raise ApiError(
                "needs_owner_approval",
                f"{move.op} {move.field}={move.value!r} {why} your owner's limit {limit.text!r}: ask your owner "
                "(room.ask_owner with this field and value) and cite the approving answer as answer:<question_id>",
                {"field": move.field, "value": move.value, "limit": limit.text},
            )

    def _approved(self, room_id: str, move: Move) -> bool:
        for ref in move.refs:
            kind, _, ident = ref.partition(":")
            if kind != "answer":
                continue
            a = self.questions.answer_by_id(room_id, ident)
            if a is None or not a.get("approved"):
                continue
            if a.get("field") not in (None, move.field):
                continue
            if a.get("value") is not None and not _same_value(str(a["value"]), str(move.value)):
                continue
            return True
        return False


def check_limits_for_fields(limits: list[str], fields: tuple[str, ...] | None) -> None:
    """Each limit readable and, when the room's fields are known, on one of them (`bad_value`)."""
    for text in limits:
        try:
            limit: Limit = parse_limit(text)
        except LimitError as err:
            raise ApiError("bad_value", f"limits: {err}") from None
        if fields is not None and limit.field not in fields:
            raise ApiError(
                "bad_value", f"limits: {text!r} is on {limit.field!r}, not a field of this room ({', '.join(fields)})"
            )
