"""Authority limits: `FIELD<=VALUE`, `FIELD>=VALUE` (also `<`, `>`, `≤`, `≥`), VALUE a number read by
`parse_amount` (`52,000 EUR`) or a date read by `parse_date` (`2026-06-30`, `June 30 2026`).

`check` answers True (within the limit), False (crosses it) or None (the proposed value cannot be read as
one number or one day: the caller should treat it as needing the owner's approval).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from clawroomd.owner.dates import Day
from clawroomd.owner.numbers import find_dates, parse_amount, parse_date

__all__ = ["Limit", "LimitError", "check", "parse_limit"]

Op = Literal["<=", ">=", "<", ">"]
_OPS: dict[str, Op] = {"<=": "<=", ">=": ">=", "<": "<", ">": ">", "≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}
_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_SHAPE = re.compile(r"^\s*(?P<field>[^<>=≤≥!]*?)\s*(?P<op>[<>=≤≥!]+)\s*(?P<value>.*?)\s*$", re.S)
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class LimitError(ValueError):
    """A limit that cannot be read; the message names the bad part."""


@dataclass(frozen=True, slots=True)
class Limit:
    field: str
    op: Op
    value: Decimal | Day
    text: str  # as the owner wrote it

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_limit(text: str) -> Limit:
    m = _SHAPE.match(text)
    if m is None or not m.group("op"):
        raise LimitError(f"no comparison in {text!r}: write FIELD<=VALUE or FIELD>=VALUE")
    field, raw_op, raw_value = m.group("field"), m.group("op"), m.group("value")
    op = _OPS.get(raw_op)
    if op is None:
        raise LimitError(f"unknown comparison {raw_op!r} in {text!r}: use <=, >=, < or >")
    if not field:
        raise LimitError(f"no field before {raw_op!r} in {text!r}")
    if not _FIELD.match(field):
        raise LimitError(f"bad field name {field!r} in {text!r}: letters, digits, _ . - and a letter first")
    if not raw_value:
        raise LimitError(f"no value after {raw_op!r} in {text!r}")
    value: Decimal | Day | None
    if find_dates(raw_value):
        value = parse_date(raw_value)
        if value is None:
            raise LimitError(f"the date {raw_value!r} in {text!r} is ambiguous or not one date: write 2026-06-30")
        if value.year is None:
            raise LimitError(f"the date {raw_value!r} in {text!r} has no year: write 2026-06-30")
    else:
        value = parse_amount(raw_value)
        if value is None:
            raise LimitError(f"cannot read {raw_value!r} in {text!r} as one number or one date")
    return Limit(field, op, value, text)


def check(limit: Limit, proposed_value_text: str, *, default_year: int | None = None) -> bool | None:
    """Whether `proposed_value_text` stays within `limit`; None when it cannot be read as a value of the
    limit's kind. A proposed day without a year takes `default_year`, and without one it is unreadable
    (`June 20` of which year?)."""
    if isinstance(limit.value, Day):
        day = parse_date(proposed_value_text)
        if day is None:
            return None
        year = day.year if day.year is not None else default_year
        if year is None:
            return None
        proposed: object = (year, day.month, day.day)
        bound: object = (limit.value.year, limit.value.month, limit.value.day)
    else:
        amount = parse_amount(proposed_value_text)
        if amount is None:
            return None
        proposed, bound = amount, limit.value
    return _COMPARE[limit.op](proposed, bound)
