# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF001
"""The leak guard (issue 9, item 2): every common spelling of a private fact is caught, other numbers,
days and words are not. Pure: the daemon wiring is tested where it refuses `leak_blocked`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawroomd.owner.guard import FactError, LeakGuard

FACTS = ["Our ceiling is 48,500 EUR", "launch on 2026-06-20", "Project Falcon", "discount 12.5%"]
CEILING, LAUNCH, FALCON, DISCOUNT = range(4)
GUARD = LeakGuard(FACTS)

LEAKS = [
    # the ceiling, 48500, in every spelling
    ("48500", CEILING), ("48,500", CEILING), ("48 500", CEILING), ("48\u00a0500", CEILING),
    ("48\u202f500", CEILING), ("48\u2009500", CEILING), ("48.500", CEILING), ("48'500", CEILING),
    ("48.5k", CEILING), ("48.5K", CEILING), ("€48,500", CEILING), ("EUR 48500", CEILING),
    ("$48,500.00", CEILING), ("48.500,00 €", CEILING), ("48500EUR", CEILING),
    ("forty-eight thousand five hundred", CEILING), ("Forty Eight Thousand, Five Hundred", CEILING),
    ("fourty-eight thousand five hundred", CEILING), ("48 thousand five hundred", CEILING),
    ("48.5 thousand", CEILING), ("0.0485 million", CEILING), ("四万八千五百", CEILING), ("四萬八千五百", CEILING),
    ("4万8500", CEILING), ("4.85万", CEILING), ("４８５００", CEILING), ("48\u200b500", CEILING),
    ("We could stretch to 48,500 if you sign today.", CEILING),
    # the launch day in every format
    ("2026-06-20", LAUNCH), ("June 20", LAUNCH), ("20 June 2026", LAUNCH), ("Jun 20th", LAUNCH), ("20/6", LAUNCH),
    ("6/20", LAUNCH), ("20.06.2026", LAUNCH), ("6月20日", LAUNCH), ("2026年6月20日", LAUNCH), ("20th of June", LAUNCH),
    ("2026/06/20", LAUNCH), ("六月二十日", LAUNCH), ("06/20/2026", LAUNCH), ("6월 20일", LAUNCH),
    # the code name, however written
    ("project falcon", FALCON), ("PROJECT FALCON", FALCON), ("Project\nFalcon", FALCON), ("Project   Falcon", FALCON),
    ("ｐｒｏｊｅｃｔ ｆａｌｃｏｎ", FALCON), ("Pro\u00adject Fal\u200bcon", FALCON), ("(project falcon)", FALCON),
    # the discount
    ("12.5%", DISCOUNT), ("12,5 %", DISCOUNT), ("12.50", DISCOUNT), ("a Discount  12.5 %", DISCOUNT),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fact"), LEAKS, ids=[f"{FACTS[f]}<-{t!r}" for t, f in LEAKS])
def test_leaking_spelling_is_caught(text: str, fact: int) -> None:
    hit = GUARD.find(text)
    assert hit is not None, f"{text!r} leaks {FACTS[fact]!r}"
    assert (hit.fact_index, hit.fact) == (fact, FACTS[fact])
    assert hit.matched == text[hit.start : hit.end] and hit.matched.strip()


NEAR_MISSES = [
    "148500", "52,000", "485", "4850", "48,5001", "485000", "4,850", "48.51k", "forty-eight thousand", "48.5",
    "June 21", "2026-06-21", "2025-06-20", "21/6", "7/20", "June 2026", "2026",
    "Project Falconer", "Falcon project", "projects falcon", "falcon", "12.6%", "125", "1.25",
]  # fmt: skip


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_miss_is_not_a_hit(text: str) -> None:
    assert GUARD.find(text) is None


def test_a_decimal_fact_matches_either_decimal_mark() -> None:
    guard = LeakGuard(["48.5"])
    for text in ["48.5", "48,5", "48.50", "rate 48,5 %"]:
        assert guard.find(text) is not None, text
    # a lone separator before three digits may be a decimal mark: refused rather than risked
    assert guard.find("48,500") is not None
    for text in ["485", "48.6", "48", "148.5", "48.55"]:
        assert guard.find(text) is None, text


def test_a_small_number_matches_only_as_itself_in_plain_digits() -> None:
    guard = LeakGuard(["20"])
    for text in ["20", "give me 20 units", "20.0", "２０"]:
        assert guard.find(text) is not None, text
    for text in ["2026", "120", "20k", "twenty", "20.5", "48,020", "two hundred", "0.20%"]:
        assert guard.find(text) is None, text


def test_a_sentence_guards_itself_and_its_numbers_but_not_its_single_digits() -> None:
    guard = LeakGuard(["We have 3 offices and 120 staff"])
    assert guard.find("see you in 3 weeks") is None
    assert guard.find("we have 3 offices and 120 staff!") is not None
    hit = guard.find("a team of one hundred twenty")
    assert hit is not None and hit.fact_index == 0


def test_phrases_fold_case_fully_and_map_spans_back() -> None:
    guard = LeakGuard(["Straße 5 lease"])
    text = "it is the STRASSE 5\n LEASE, you know"
    hit = guard.find(text)
    assert hit is not None and hit.matched == "STRASSE 5\n LEASE"
    hit = LeakGuard(["Straße"]).find("Die große Straße!")
    assert hit is not None and hit.matched == "Straße"


def test_chinese_phrase_matches_without_spaces_around_it() -> None:
    guard = LeakGuard(["猎鹰项目"])
    assert guard.find("我们的猎鹰项目很好") is not None
    assert guard.find("我们的项目很好") is None


def test_a_year_less_fact_matches_any_year_and_a_dated_one_only_its_own() -> None:
    assert LeakGuard(["June 20"]).find("2031-06-20") is not None
    assert LeakGuard(["2026-06-20"]).find("June 20th") is not None
    assert LeakGuard(["2026-06-20"]).find("20 June 2027") is None


def test_check_strings_names_the_string_and_find_all_every_fact() -> None:
    hit = GUARD.check_strings(["hello", "fine", "price 48.5k, launch June 20"])
    assert hit is not None and (hit.string_index, hit.fact_index, hit.matched) == (2, CEILING, "48.5k")
    assert GUARD.check_strings(["hello", "52,000 EUR"]) is None
    assert {h.fact_index for h in GUARD.find_all("48.5k on June 20 for project falcon")} == {CEILING, LAUNCH, FALCON}


def test_an_empty_fact_is_refused() -> None:
    with pytest.raises(FactError, match="private fact 1 is empty"):
        LeakGuard(["48500", "  \u200b "])


GROUPS = [",", ".", " ", "\u00a0", "\u202f", "'"]


def spell(n: int, how: int, sep: str) -> str:
    s = str(n)
    head = len(s) % 3 or 3
    groups = sep.join([s[:head], *(s[i : i + 3] for i in range(head, len(s), 3))])
    if how == 1:
        return groups
    if how == 2 and n % 100 == 0:
        return f"{Decimal(n) / 1000:f}k"
    if how == 3:
        return s.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    return s


filler = st.text(st.characters(exclude_categories=("Nd", "No", "Nl", "Cs")), max_size=40).filter(
    lambda s: not any("\u2e80" <= c <= "\u9fff" or c in "零〇两兩万萬亿億壹贰叁肆伍陆柒捌玖拾佰仟" for c in s)
)


@given(st.integers(1000, 10**10), st.integers(0, 3), st.sampled_from(GROUPS), filler, filler)
def test_a_fact_number_is_caught_in_any_spelling_among_any_text(
    n: int, how: int, sep: str, before: str, after: str
) -> None:
    text = f"{before} {spell(n, how, sep)}; {after}"  # `;`: filler such as `million` would change the number
    assert LeakGuard([str(n)]).find(text) is not None, text


@given(st.integers(100, 10**10), filler)
def test_text_without_digits_never_hits_a_number_fact(n: int, text: str) -> None:
    assert LeakGuard([str(n)]).find(text) is None


OTHERS = st.lists(st.tuples(st.integers(0, 10**10), st.integers(0, 3), st.sampled_from(GROUPS)))


@given(st.integers(1000, 10**10), OTHERS)
def test_other_numbers_in_any_spelling_never_hit(n: int, others: list[tuple[int, int, str]]) -> None:
    text = " ; ".join(spell(m, how, sep) for m, how, sep in others if m != n)
    assert LeakGuard([str(n)]).find(text) is None, text


@given(st.text(max_size=300))
def test_any_text_is_checked_without_error(text: str) -> None:
    for hit in GUARD.find_all(text):
        assert 0 <= hit.start < hit.end <= len(text) and hit.matched == text[hit.start : hit.end]
