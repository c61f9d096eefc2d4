"""Numbers spelled out: English words (`forty-eight thousand five hundred`, `48 thousand`, `1.2 million`)
and CJK numerals (`四万八千五百`, `4万8500`, `4.85万`, `二〇二六`). Both read normalised (lower-case) text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}

_WORDS: dict[str, tuple[str, int]] = {w: ("unit", i) for i, w in enumerate(_UNITS)}
_WORDS |= {w: ("teen", 10 + i) for i, w in enumerate(_TEENS)}
_WORDS |= {w: ("tens", 20 + 10 * i) for i, w in enumerate(_TENS)}
_WORDS |= {"hundred": ("hundred", 100)} | {w: ("scale", v) for w, v in SCALES.items()}
_WORDS["fourty"] = _WORDS["forty"]  # a misspelling common enough to leak through

_ALT = "|".join(sorted(_WORDS, key=len, reverse=True))
_SEP = r"(?:[ \t\n,-]+|\s+and\s+)"
_NUMERAL = r"[0-9]+(?:\.[0-9]+)?"
# A run: optionally `a`, or a numeral directly before a number word (`48 thousand`), then number words.
_RUN = re.compile(rf"(?:\ba\s+|(?<![0-9.,])(?P<num>{_NUMERAL})\s*)?\b(?:{_ALT})\b(?:{_SEP}(?:{_ALT})\b)*")
_TOKEN = re.compile(rf"{_NUMERAL}|[a-z]+")


def english_numbers(text: str, words: frozenset[str] | None = None) -> Iterator[tuple[int, int, Decimal]]:
    """(start, end, value) for every number written in English words in `text` (lower-case); `words`, the
    set of its Latin words if the caller has it, lets a text without a number word skip the regex."""
    if words is not None and words.isdisjoint(_WORDS):
        return
    for run in _RUN.finditer(text):
        tokens = [(m.start() + run.start(), m.end() + run.start(), m.group()) for m in _TOKEN.finditer(run.group())]
        yield from _parse(tokens)


class _Words:
    """The number being read: `last` is the kind of its last word ("" before the first)."""

    def __init__(self) -> None:
        self.total, self.current = Decimal(0), Decimal(0)
        self.last, self.last_scale, self.start, self.end = "", 10**15, -1, -1

    def fits(self, kind: str, value: Decimal) -> bool:
        last, current = self.last, self.current
        if kind in ("numeral", "a"):
            return last == ""
        if kind in ("unit", "teen", "tens") and value == 0:
            return last == ""  # `zero` only stands alone
        if kind == "unit":
            return last in ("", "hundred", "scale") or (last == "tens" and current % 10 == 0)
        if kind in ("teen", "tens"):
            return last in ("", "hundred", "scale")
        if kind == "hundred":
            return last in ("unit", "teen", "tens", "a") and 0 < current < 100
        return last in ("unit", "teen", "tens", "hundred", "numeral", "a") and current > 0 and value < self.last_scale

    def add(self, kind: str, value: Decimal, start: int, end: int) -> None:
        if self.start < 0:
            self.start = start
        if kind == "hundred":
            self.current *= 100
        elif kind == "scale":
            self.total += self.current * value
            self.current, self.last_scale = Decimal(0), int(value)
        else:
            self.current += value
        self.last, self.end = kind, end

    def result(self) -> tuple[int, int, Decimal] | None:
        if self.last in ("", "numeral", "a"):
            return None  # a bare numeral is the digit reader's; a bare `a` is no number
        return self.start, self.end, self.total + self.current


def _parse(tokens: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, Decimal]]:
    """A word that cannot continue the number read so far ends it and starts the next (`two three` is two
    numbers, `forty eight` one); a numeral counts only as the multiplicand of a scale (`48 thousand`)."""
    number, after_and = _Words(), False
    for start, end, word in tokens:
        if word == "and":
            after_and = number.last in ("hundred", "scale")
            continue
        if word[0].isdigit():
            kind, value = "numeral", Decimal(word)
        elif word == "a":
            kind, value = "a", Decimal(1)
        else:
            kind, raw = _WORDS[word]
            value = Decimal(raw)
        if not number.fits(kind, value) or (after_and and kind not in ("unit", "teen", "tens")):
            if (done := number.result()) is not None:
                yield done
            number = _Words()
            if not number.fits(kind, value):
                after_and = False
                continue
        number.add(kind, value, start, end)
        after_and = False
    if (done := number.result()) is not None:
        yield done


_CJK_DIGITS = {c: i for digits in ("零一二三四五六七八九", "〇壹贰叁肆伍陆柒捌玖") for i, c in enumerate(digits)}
_CJK_DIGITS |= {"两": 2, "兩": 2, "貳": 2, "參": 3, "叁": 3, "陸": 6}
_CJK_SMALL = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CJK_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "兆": 10**12}
CJK_UNITS = "".join(_CJK_SMALL) + "".join(_CJK_BIG)
_CJK_CHARS = "".join(_CJK_DIGITS) + CJK_UNITS
_CJK_RUN = re.compile(rf"[0-9.{_CJK_CHARS}]*[{_CJK_CHARS}][0-9.{_CJK_CHARS}]*")
_ARABIC = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def cjk_numbers(text: str) -> Iterator[tuple[int, int, Decimal]]:
    """(start, end, value) for every CJK numeral in `text`, Arabic digits mixed in (`4万8500`) or not."""
    for run in _CJK_RUN.finditer(text):
        s, start, end = run.group(), run.start(), run.end()
        while s and s[0] == ".":
            s, start = s[1:], start + 1
        while s and s[-1] == ".":
            s, end = s[:-1], end - 1
        value = cjk_value(s)
        if value is not None:
            yield start, end, value


def cjk_value(s: str) -> Decimal | None:
    if not any(c in _CJK_SMALL or c in _CJK_BIG for c in s):
        # positional, as years are written (`二〇二六`): digits only
        if all(c in _CJK_DIGITS for c in s):
            return Decimal("".join(str(_CJK_DIGITS[c]) for c in s))
        return None
    total, section = Decimal(0), Decimal(0)
    number: Decimal | None = None
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit() or c == ".":
            m = _ARABIC.match(s, i)
            if m is None or number is not None:
                return None
            try:
                number = Decimal(m.group())
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                return None
            i = m.end()
            continue
        if c in _CJK_DIGITS:
            if number is not None:
                return None
            number = None if c in "零〇" else Decimal(_CJK_DIGITS[c])
        elif c in _CJK_SMALL:
            section += (Decimal(1) if number is None else number) * _CJK_SMALL[c]
            number = None
        else:
            section += number if number is not None else 0
            if section == 0:
                return None
            total += section * _CJK_BIG[c]
            section, number = Decimal(0), None
        i += 1
    return total + section + (number if number is not None else 0)
