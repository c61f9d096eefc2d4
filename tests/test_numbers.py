# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF001
"""The number and date reader the leak guard and authority limits are built on (clawroomd.owner)."""

from __future__ import annotations

import calendar
import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawroomd.owner.numbers import Day, find_dates, find_numbers, parse_amount, parse_date

N = Decimal(48500)


@pytest.mark.parametrize(
    "text",
    ["48500", "48,500", "48 500", "48\u00a0500", "48\u202f500", "48\u2009500", "48.500", "48'500", "48.5k",
     "48.5K", "€48,500", "EUR 48500", "$48,500.00", "48.500,00", "forty-eight thousand five hundred",
     "forty eight thousand, five hundred", "48 thousand five hundred", "0.0485 million", "四万八千五百",
     "4万8500", "4.85万", "四萬八千五百", "４８５００", "48\u200b500"],
)  # fmt: skip
def test_every_spelling_reads_48500(text: str) -> None:
    hits = [h for h in find_numbers(text) if h.value == N]
    assert hits, find_numbers(text)
    assert any(text[h.start : h.end].strip() for h in hits)


@pytest.mark.parametrize("text", ["148500", "52,000", "485", "4850", "48,5001", "485000", "4,850", "48.51k"])
def test_other_numbers_do_not_read_48500(text: str) -> None:
    assert all(h.value != N for h in find_numbers(text))


def test_ambiguous_separator_is_read_both_ways() -> None:
    assert {h.value for h in find_numbers("48.500")} == {Decimal("48500"), Decimal("48.5")}
    assert {h.value for h in find_numbers("48,5")} == {Decimal("48.5")}
    assert {h.value for h in find_numbers("1,234,567.89")} == {Decimal("1234567.89")}
    assert {h.value for h in find_numbers("1.234.567,89")} == {Decimal("1234567.89")}


def test_spans_point_into_the_original_text() -> None:
    text = "Straße: ４８\u202f５００ €, or forty-eight thousand"
    spans = {text[h.start : h.end] for h in find_numbers(text)}
    assert "４８\u202f５００" in spans
    assert "forty-eight thousand" in spans


def test_english_words_split_where_a_number_cannot_continue() -> None:
    assert sorted(h.value for h in find_numbers("two three")) == [2, 3]
    assert [h.value for h in find_numbers("one hundred and twenty")] == [120]
    assert [h.value for h in find_numbers("someone")] == []


JUNE_20 = Day(6, 20, 2026)


@pytest.mark.parametrize(
    "text",
    ["2026-06-20", "June 20", "20 June 2026", "Jun 20th", "20/6", "6/20", "20.06.2026", "6月20日", "2026年6月20日",
     "June 20, 2026", "20th of June", "2026/06/20", "六月二十日", "20.6.", "06/20/2026", "6월 20일", "６月２０日"],
)  # fmt: skip
def test_every_date_spelling_reads_june_20(text: str) -> None:
    assert any(h.value.same_day(JUNE_20) for h in find_dates(text)), find_dates(text)


@pytest.mark.parametrize("text", ["June 21", "2026-06-21", "2025-06-20", "21/6", "7/20", "June 2026", "20.5", "2026"])
def test_other_days_do_not_read_june_20(text: str) -> None:
    assert not any(h.value.same_day(JUNE_20) for h in find_dates(text))


def test_a_date_that_fits_two_days_yields_both() -> None:
    assert {h.value for h in find_dates("6/5")} == {Day(6, 5), Day(5, 6)}
    assert {h.value for h in find_dates("31/12")} == {Day(12, 31)}
    assert find_dates("2026-02-30") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("52,000 EUR", 52000), ("52.000", 52000), ("EUR 48.5k", 48500), ("€1.2m", 1200000), ("48,5", "48.5"),
     ("-5", -5), ("fifty-two thousand", 52000), ("4万8500", 48500), ("$48,500.00/year", 48500)],
)  # fmt: skip
def test_parse_amount(text: str, value: int | str) -> None:
    assert parse_amount(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "soon", "40-50", "between 40k and 50k", "June 20", "2026-06-20"])
def test_parse_amount_refuses_none_or_several(text: str) -> None:
    assert parse_amount(text) is None


def test_parse_date() -> None:
    assert parse_date("by 2026-06-20") == JUNE_20
    assert parse_date("June 20") == Day(6, 20)
    assert parse_date("6/5") is None  # two days
    assert parse_date("June 20 or June 21") is None
    assert parse_date("48500") is None


GROUP_SEPARATORS = [",", ".", " ", "\u00a0", "\u202f", "\u2009", "'"]
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def grouped(n: int, sep: str) -> str:
    s = str(n)
    head = len(s) % 3 or 3
    return sep.join([s[:head], *(s[i : i + 3] for i in range(head, len(s), 3))])


@given(st.integers(0, 10**13), st.sampled_from(GROUP_SEPARATORS), st.booleans(), st.sampled_from(["", "€", "EUR "]))
def test_any_grouping_reads_back(n: int, sep: str, wide: bool, currency: str) -> None:
    digits = grouped(n, sep)
    text = currency + (digits.translate(FULLWIDTH) if wide else digits)
    assert any(h.value == n and h.end == len(text) and h.start == len(currency) for h in find_numbers(text))


@given(st.integers(1, 10**9), st.sampled_from([(",", "."), (".", ","), (" ", ","), ("'", ".")]), st.integers(0, 99))
def test_grouping_with_decimals_reads_back(n: int, marks: tuple[str, str], cents: int) -> None:
    text = f"{grouped(n, marks[0])}{marks[1]}{cents:02d}"
    assert Decimal(f"{n}.{cents:02d}") in {h.value for h in find_numbers(text)}


UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def in_words(n: int, hyphen: str, comma: str, use_and: bool) -> str:
    def below_100(r: int) -> str:
        return UNITS[r] if r < 20 else TENS[r // 10] + (hyphen + UNITS[r % 10] if r % 10 else "")

    def below_1000(r: int) -> str:
        h, rest = divmod(r, 100)
        parts = [f"{UNITS[h]} hundred"] if h else []
        if rest:
            parts += (["and"] if h and use_and else []) + [below_100(rest)]
        return " ".join(parts)

    if n == 0:
        return "zero"
    parts = []
    for scale, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= scale:
            parts.append(f"{below_1000(n // scale)} {name}")
            n %= scale
    if n:
        parts.append(below_1000(n))
    return comma.join(parts)


@given(st.integers(0, 10**12 - 1), st.sampled_from(["-", " "]), st.sampled_from([" ", ", "]), st.booleans())
def test_english_words_read_back(n: int, hyphen: str, comma: str, use_and: bool) -> None:
    text = in_words(n, hyphen, comma, use_and)
    assert [(h.value, h.start, h.end) for h in find_numbers(text)] == [(n, 0, len(text))]


CJK_DIGITS = "零一二三四五六七八九"


def in_cjk(n: int) -> str:
    def section(r: int) -> str:
        out, zero = "", False
        for d, unit in zip((r // 1000, r // 100 % 10, r // 10 % 10, r % 10), "千百十 ", strict=True):
            if d == 0:
                zero = bool(out)
                continue
            out += ("零" if zero else "") + CJK_DIGITS[d] + unit.strip()
            zero = False
        return out

    if n == 0:
        return "零"
    out = ""
    for big, name in ((10**8, "亿"), (10**4, "万"), (1, "")):
        part = n // big % 10**4 if big < 10**8 else n // big
        if part:
            out += ("零" if out and part < 1000 else "") + section(part) + name
    return out


@given(st.integers(0, 10**12 - 1))
def test_cjk_numerals_read_back(n: int) -> None:
    text = in_cjk(n)
    assert any(h.value == n and (h.start, h.end) == (0, len(text)) for h in find_numbers(text)), text
    mixed = f"{n // 10**4}万{n % 10**4}" if n >= 10**4 else str(n)
    assert any(h.value == n for h in find_numbers(mixed)), mixed


MONTHS = [calendar.month_name[m] for m in range(1, 13)]


@given(st.dates(), st.integers(0, 7))
def test_any_date_format_reads_back(d: datetime.date, style: int) -> None:
    text = [
        d.isoformat(), f"{MONTHS[d.month - 1]} {d.day}, {d.year}", f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
        f"{d.day:02d}.{d.month:02d}.{d.year}", f"{d.month}/{d.day}/{d.year}", f"{d.year}年{d.month}月{d.day}日",
        f"{MONTHS[d.month - 1]} {d.day}th", f"{d.day}/{d.month}",
    ][style]  # fmt: skip
    year = None if style >= 6 else d.year
    if d.year < 1000 and style < 6:
        return  # four-digit years only
    assert Day(d.month, d.day, year) in {h.value for h in find_dates(text)}, text


@given(st.text(max_size=200))
def test_any_text_reads_without_error_and_spans_stay_inside(text: str) -> None:
    for hit in [*find_numbers(text), *find_dates(text)]:
        assert 0 <= hit.start < hit.end <= len(text)
    parse_amount(text)
    parse_date(text)


def test_a_long_list_of_numbers_reads_in_linear_time() -> None:
    import time

    text = ",".join(str(i % 10) for i in range(20_000))  # 1,2,3,...: no number, 20,000 pieces
    t0 = time.perf_counter()
    hits = find_numbers(text)
    assert time.perf_counter() - t0 < 5  # ~0.1 s here; unbounded it was cubic: 0.8 s for 1,000
    assert len(hits) >= 10_000
    assert parse_amount(text) is None
