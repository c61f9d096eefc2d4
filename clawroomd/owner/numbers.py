# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF002
"""Every number and date a text mentions, in the spellings people and agents actually write.

Numbers: `48500`, `48,500`, `48 500` (any space, also no-break and thin), `48'500`, `48.500` (European
thousands), `48,500.00`, `48.500,00`, `48.5k`, `1.2m`, `1.2 million`, `€48,500`, `EUR 48500`, English
words (`forty-eight thousand five hundred`, `48 thousand`), CJK numerals (`四万八千五百`, `4万8500`,
`4.85万`) and any Unicode digits (`４８５００`). A spelling that could mean two numbers yields both: a lone
`.` or `,` before exactly three digits (`48.500`, `48,500`) is read as a thousands separator (48500) *and*
as a decimal mark (48.5); digits grouped by spaces are also read one by one (`3 500` is 3500, 3 and 500).
Dates: see `dates.py`. Every hit carries its span in the original text.

`parse_amount` and `parse_date` read one value out of a short text such as `52,000 EUR`: there a lone
separator before three digits is a thousands separator, so `52,000` and `52.000` are both 52000.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from clawroomd.owner.dates import Day, find_days
from clawroomd.owner.normalize import Normalized, normalize
from clawroomd.owner.spelled import CJK_UNITS, SCALES, cjk_numbers, english_numbers

__all__ = ["DateHit", "Day", "NumberHit", "find_dates", "find_mentions", "find_numbers", "parse_amount",
           "parse_date"]  # fmt: skip

# plain: bare digits; decimal: `48.5`; grouped: `48,500`, `48 500`, `1.234,56` (and the thousands reading of
# `48.500`); ambiguous: the decimal reading of `48.500`; piece: one group of `48 500` read alone;
# scaled: `48.5k`, `1.2 million`; words: English words; cjk: CJK numerals.
Form = Literal["plain", "decimal", "grouped", "ambiguous", "piece", "scaled", "words", "cjk"]


@dataclass(frozen=True, slots=True)
class NumberHit:
    value: Decimal
    start: int  # the span in the original text
    end: int
    form: Form


@dataclass(frozen=True, slots=True)
class DateHit:
    value: Day
    start: int
    end: int


_DIGITS = re.compile(r"(?<![0-9])[0-9]+(?:[.,' ][0-9]+)*")
_SPLIT = re.compile(r"[.,' ]")
_SUFFIX = re.compile(r"( ?)(k|mn|mm|mio|m|bn|b)(?![a-z])|( ?)(thousand|million|billion|trillion)\b")
# The most separators one number may have (10^21 in groups of three): it bounds the work on a long list
# such as `1,2,3,...` to linear, where trying every longer run first would be cubic.
_MAX_GROUPS = 7
_LETTER_SCALE = {"k": 10**3, "m": 10**6, "mn": 10**6, "mm": 10**6, "mio": 10**6, "b": 10**9, "bn": 10**9}


def _grouped(pieces: list[str]) -> bool:
    head = pieces[0]
    return 1 <= len(head) <= 3 and head[0] != "0" and all(len(p) == 3 for p in pieces[1:])


def _readings(pieces: list[str], seps: list[str]) -> list[tuple[Decimal, Form]]:
    """The values `pieces` joined by `seps` can be read as (empty: not one number)."""
    if not seps:
        return [(Decimal(pieces[0]), "plain")]
    kinds = set(seps)
    if len(kinds) == 1:
        sep = seps[0]
        out: list[tuple[Decimal, Form]] = []
        if _grouped(pieces):
            out.append((Decimal("".join(pieces)), "grouped"))
        if len(seps) == 1 and sep in ".,":
            out.append((Decimal(f"{pieces[0]}.{pieces[1]}"), "ambiguous" if out else "decimal"))
        return out
    *thousands, mark = seps
    if mark in ".," and len(set(thousands)) == 1 and thousands[0] != mark and _grouped(pieces[:-1]):
        return [(Decimal("".join(pieces[:-1]) + "." + pieces[-1]), "grouped")]
    return []


def _digit_numbers(text: str) -> Iterator[tuple[int, int, Decimal, Form]]:
    for token in _DIGITS.finditer(text):
        pieces = _SPLIT.split(token.group())
        seps = [token.group()[m.start()] for m in _SPLIT.finditer(token.group())]
        offsets = [token.start()]
        for p, _ in zip(pieces, seps, strict=False):
            offsets.append(offsets[-1] + len(p) + 1)
        i = 0
        while i < len(pieces):
            j = min(len(pieces) - 1, i + _MAX_GROUPS)
            while j > i and not _readings(pieces[i : j + 1], seps[i:j]):
                j -= 1
            start, end = offsets[i], offsets[j] + len(pieces[j])
            readings = _readings(pieces[i : j + 1], seps[i:j])
            if " " in seps[i:j]:  # `3 500` may be two numbers
                for k in range(i, j + 1):
                    yield offsets[k], offsets[k] + len(pieces[k]), Decimal(pieces[k]), "piece"
            i = j + 1
            if (start > 0 and text[start - 1] in CJK_UNITS) or (end < len(text) and text[end] in CJK_UNITS):
                continue  # part of `4万8500`: the CJK reader's
            suffix = _SUFFIX.match(text, end) if end < len(text) else None
            if suffix is None:
                yield from ((start, end, value, form) for value, form in readings)
                continue
            scale = _LETTER_SCALE[suffix.group(2)] if suffix.group(2) else SCALES[suffix.group(4)]
            for value, form in readings:
                yield start, suffix.end(), value * scale, "scaled"
                if suffix.group(1):  # `5 m` may be five metres: keep the plain reading too
                    yield start, end, value, form


def _number_hits(norm: Normalized) -> list[NumberHit]:
    found: list[tuple[int, int, Decimal, Form]] = list(_digit_numbers(norm.text))
    found += ((s, e, v, "words") for s, e, v in english_numbers(norm.text, norm.words))
    found += ((s, e, v, "cjk") for s, e, v in cjk_numbers(norm.text))
    return [NumberHit(value, *norm.span(start, end), form) for start, end, value, form in found]


def _date_hits(norm: Normalized) -> list[DateHit]:
    return [DateHit(day, *norm.span(start, end)) for start, end, day in find_days(norm.text, norm.words)]


def find_numbers(text: str) -> list[NumberHit]:
    """Every reading of every number in `text`, in no promised order (several may share a span)."""
    return _number_hits(normalize(text))


def find_dates(text: str) -> list[DateHit]:
    """Every reading of every date in `text` (`6/5` yields June 5 and May 6)."""
    return _date_hits(normalize(text))


def find_mentions(text: str) -> list[NumberHit | DateHit]:
    """Numbers and dates together, ordered by where they start."""
    norm = normalize(text)
    hits: list[NumberHit | DateHit] = [*_number_hits(norm), *_date_hits(norm)]
    return sorted(hits, key=lambda h: (h.start, h.end))


_MAX_MENTIONS = 16  # more readings than this is no single value (and keeps _outermost cheap)


def _outermost(spans: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """The spans no other span contains (quadratic: callers give it the few mentions of one value)."""
    spans = set(spans)
    return {s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)}


def parse_amount(text: str) -> Decimal | None:
    """The one number `text` states (`52,000 EUR`, `€48.5k`, `-5`), or None when it states none, several,
    or a date. A lone separator before three digits groups thousands; a leading minus makes it negative."""
    norm = normalize(text)
    if _date_hits(norm):
        return None
    hits = [h for h in _number_hits(norm) if h.form != "ambiguous"]
    if len(hits) > _MAX_MENTIONS:
        return None
    outer = _outermost((h.start, h.end) for h in hits)
    values = {h.value for h in hits if (h.start, h.end) in outer}
    if len(outer) != 1 or len(values) != 1:
        return None
    (start, _), value = outer.pop(), values.pop()
    before = text[:start].rstrip(" €$£¥")
    return -value if before.endswith(("-", "\u2212")) and not before[:-1].rstrip()[-1:].isalnum() else value


def parse_date(text: str) -> Day | None:
    """The one date `text` states (`2026-06-20`, `June 20`), or None when it states none, several, or one
    that reads as two days (`6/5`)."""
    hits = _date_hits(normalize(text))
    if len(hits) > _MAX_MENTIONS:
        return None
    outer = _outermost((h.start, h.end) for h in hits)
    days = {h.value for h in hits if (h.start, h.end) in outer}
    return days.pop() if len(outer) == 1 and len(days) == 1 else None
