# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF001
"""Dates in the common spellings: `2026-06-20`, `June 20`, `20 June 2026`, `Jun 20th`, `20/6`, `6/20`,
`20.06.2026`, `20.6.`, `6月20日`, `2026年6月20日`, `6월 20일`. Reads normalised (lower-case) text.

A spelling that fits two days (`6/5`, `05/06/2026`) yields both; a year of two digits is 20yy.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass

from clawroomd.owner.spelled import cjk_value


@dataclass(frozen=True, slots=True, order=True)
class Day:
    """A calendar day; `year` is None when the text did not say it (`June 20`)."""

    month: int
    day: int
    year: int | None = None

    def same_day(self, other: Day) -> bool:
        """The same month and day, and the same year unless either leaves it out."""
        return (
            self.month == other.month
            and self.day == other.day
            and (self.year is None or other.year is None or self.year == other.year)
        )

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}" if self.year else f"--{self.month:02d}-{self.day:02d}"


_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            (),
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
_MONTH = "(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORD = r"(?:st|nd|rd|th)?\b"
_YEAR = r"(?:,?\s+(?P<y>[0-9]{4})(?![0-9]))?"
_CJK_NUM = "[0-9零〇一二三四五六七八九十两]{1,4}"

_PATTERNS = [
    ("ymd", re.compile(r"(?<![0-9])(?P<y>[0-9]{4})([-/.])(?P<a>[0-9]{1,2})\2(?P<b>[0-9]{1,2})(?![0-9])")),
    ("dmy", re.compile(r"(?<![0-9.])(?P<a>[0-9]{1,2})([-/.])(?P<b>[0-9]{1,2})\2(?P<y>[0-9]{4}|[0-9]{2})(?![0-9])")),
    ("dm", re.compile(r"(?<![0-9/.])(?P<a>[0-9]{1,2})/(?P<b>[0-9]{1,2})(?![0-9]|/[0-9])")),
    ("dm.", re.compile(r"(?<![0-9.])(?P<a>[0-9]{1,2})\.(?P<b>[0-9]{1,2})\.(?![0-9])")),
    ("named_md", re.compile(rf"\b{_MONTH}\s*(?P<d>[0-9]{{1,2}}){_ORD}{_YEAR}")),
    ("named_dm", re.compile(rf"(?<![0-9])(?P<d>[0-9]{{1,2}}){_ORD}\.?\s*(?:of\s+)?{_MONTH}{_YEAR}")),
    (
        "cjk",
        re.compile(
            rf"(?:(?P<y>[0-9]{{4}}|[〇零一二三四五六七八九]{{4}})\s*年\s*)?(?P<m>{_CJK_NUM})\s*月\s*"
            rf"(?P<d>{_CJK_NUM})\s*[日号號]"
        ),
    ),
    ("korean", re.compile(r"(?:(?P<y>[0-9]{4})\s*년\s*)?(?P<m>[0-9]{1,2})\s*월\s*(?P<d>[0-9]{1,2})\s*일")),
]


def _valid(month: int, day: int, year: int | None) -> bool:
    if not 1 <= month <= 12 or day < 1:
        return False
    return day <= calendar.monthrange(year or 2024, month)[1]  # without a year, allow Feb 29 (2024 is leap)


def _number(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    value = cjk_value(s)
    return int(value) if value is not None and value == value.to_integral_value() else None


def _year(s: str | None) -> int | None:
    if s is None:
        return None
    year = _number(s)
    return None if year is None else (2000 + year if len(s) == 2 else year)


def _cannot_match(kind: str, text: str, words: frozenset[str] | None) -> bool:
    if kind in ("named_md", "named_dm"):
        return words is not None and words.isdisjoint(_MONTHS)
    return (kind == "cjk" and "月" not in text) or (kind == "korean" and "월" not in text)


def find_days(text: str, words: frozenset[str] | None = None) -> Iterator[tuple[int, int, Day]]:
    """(start, end, day) for every date in `text` (normalised), one per reading of an ambiguous one;
    `words`, the set of its Latin words if the caller has it, lets it skip patterns that cannot match."""
    for kind, pattern in _PATTERNS:
        if _cannot_match(kind, text, words):
            continue
        for m in pattern.finditer(text):
            groups = m.groupdict()
            year = _year(groups.get("y"))
            if kind in ("named_md", "named_dm"):
                readings = [(_MONTHS[groups["mon"]], int(groups["d"]))]
            elif kind in ("cjk", "korean"):
                month, day = _number(groups["m"]), _number(groups["d"])
                readings = [(month, day)] if month is not None and day is not None else []
            else:
                a, b = int(groups["a"]), int(groups["b"])
                # year first is always y-m-d; a dot between day and month is European, never m.d
                readings = [(a, b)] if kind == "ymd" else [(b, a)] if m.group(0).count(".") else [(b, a), (a, b)]
            for month, day in dict.fromkeys(readings):
                if _valid(month, day, year):
                    yield m.start(), m.end(), Day(month, day, year)
