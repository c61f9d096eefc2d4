"""Authority limits (issue 9, item 3): parsing `FIELD<=VALUE` and checking a proposed value against it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawroomd.owner.dates import Day
from clawroomd.owner.limits import LimitError, check, parse_limit


@pytest.mark.parametrize(
    ("text", "field", "op", "value"),
    [("price<=52,000 EUR", "price", "<=", Decimal(52000)), ("price >= 40k", "price", ">=", Decimal(40000)),
     ("seats<25", "seats", "<", Decimal(25)), ("term_months>12", "term_months", ">", Decimal(12)),
     ("price ≤ €52.000", "price", "<=", Decimal(52000)), ("fee<=-5", "fee", "<=", Decimal(-5)),
     ("deadline<=2026-06-30", "deadline", "<=", Day(6, 30, 2026)),
     ("start>=June 1, 2026", "start", ">=", Day(6, 1, 2026))],
)  # fmt: skip
def test_parse_limit(text: str, field: str, op: str, value: Decimal | Day) -> None:
    limit = parse_limit(text)
    assert (limit.field, limit.op, limit.value, limit.text) == (field, op, value, text)


@pytest.mark.parametrize(
    ("text", "names"),
    [("price", "no comparison"), ("price=5", "unknown comparison '='"), ("price==5", "unknown comparison '=='"),
     ("price<>5", "unknown comparison '<>'"), ("<=5", "no field"), ("the price<=5", "bad field name 'the price'"),
     ("price<=", "no value"), ("price<=cheap", "cannot read 'cheap'"), ("price<=40k or 50k", "cannot read"),
     ("deadline<=June 30", "has no year"), ("deadline<=6/5/2026", "ambiguous"), ("", "no comparison")],
)  # fmt: skip
def test_bad_limit_names_the_bad_part(text: str, names: str) -> None:
    with pytest.raises(LimitError, match=names.replace("(", r"\(")):
        parse_limit(text)


@pytest.mark.parametrize(
    ("limit", "proposed", "ok"),
    [("price<=52,000 EUR", "48,500 EUR", True), ("price<=52,000 EUR", "52.000", True),
     ("price<=52,000 EUR", "52,001", False), ("price<=52,000 EUR", "fifty-three thousand", False),
     ("price<=52,000 EUR", "€52.5k", False), ("price<52000", "52000", False), ("price>=40k", "39,999.99", False),
     ("price>=40k", "四万", True), ("price<=52000", "about 40-50k", None), ("price<=52000", "cheap", None),
     ("price<=52000", "2026-06-20", None),
     ("deadline<=2026-06-30", "2026-06-20", True), ("deadline<=2026-06-30", "July 1, 2026", False),
     ("deadline<=2026-06-30", "30.06.2026", True), ("deadline<2026-06-30", "2026年6月30日", False),
     ("deadline<=2026-06-30", "June 20", None), ("deadline<=2026-06-30", "6/5/2026", None),
     ("deadline<=2026-06-30", "52000", None)],
)  # fmt: skip
def test_check(limit: str, proposed: str, ok: bool | None) -> None:
    assert check(parse_limit(limit), proposed) is ok


def test_a_year_less_day_takes_the_callers_year() -> None:
    limit = parse_limit("deadline<=2026-06-30")
    assert check(limit, "June 20", default_year=2026) is True
    assert check(limit, "June 20", default_year=2027) is False


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_check_agrees_with_integer_comparison(bound: int, proposed: int) -> None:
    limit = parse_limit(f"price<={bound:,} EUR")
    assert check(limit, f"EUR {proposed:,}") is (proposed <= bound)
