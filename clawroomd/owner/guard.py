# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF002
"""The leak guard: does a text about to be signed for the peer mention one of the owner's private facts?

Each fact is compiled once into needles:
- its numbers, matched in any spelling `numbers.py` reads (`48,500` in a fact also hits `48.5k`,
  `forty-eight thousand five hundred`, `4万8500`, and `48.500` read as European thousands). A fact's own
  `48,500` / `48.500` is read as 48500; a message's is read both ways (48500 and 48.5), so a fact 48.5
  also hits `48,500` in a message: the guard errs on the side of refusing.
- its dates, matched in any format; a date without a year on either side matches any year.
- unless the fact is just a number or a date (with at most a currency or unit word), the fact itself as a
  phrase: case-folded, any run of whitespace matching any other, invisible characters ignored, on word
  boundaries where the fact starts or ends with a letter or digit.

Small numbers would hit everywhere (`20` is in every `June 20`, `twenty`, `20k`), so a number under 100
with fewer than 3 significant digits (20, 5, 0.5, 1.5) is *weak*: it matches only a number written in
plain digits with the same value (`20`, `20.0`, `２０`; not `2026`, `120`, `20k`, `twenty`, `48,020`).
Inside a sentence, a weak number under 10 is no needle of its own (`2 weeks`); the sentence still is.

Not caught, by design of a pattern guard: paraphrase (`just under fifty thousand`), arithmetic
(`97,000 / 2`), homoglyphs from other scripts, and spellings not listed in `numbers.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from clawroomd.owner.normalize import normalize
from clawroomd.owner.numbers import DateHit, NumberHit, _date_hits, _number_hits

__all__ = ["FactError", "LeakGuard", "LeakHit", "is_weak"]

_PLAIN_FORMS = frozenset({"plain", "decimal", "piece"})
# Words that may stand beside a number without making the fact a sentence (`48,500 EUR`); so may any word
# of three letters or fewer (currency codes, `per`, `net`).
_UNIT_WORDS = frozenset({"euro", "euros", "dollar", "dollars", "pound", "pounds", "yuan", "percent", "gross"})
_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}"
_WORD = re.compile(r"[^\W\d_]+")


class FactError(ValueError):
    """A private fact the guard cannot use (empty); nothing was compiled."""


@dataclass(frozen=True, slots=True)
class LeakHit:
    fact_index: int  # which private fact, by its position in the list given to LeakGuard
    fact: str
    kind: Literal["number", "date", "phrase"]
    start: int  # the span of the leaking text in the checked string
    end: int
    matched: str
    string_index: int = 0  # which string of check_strings()


def is_weak(value: Decimal) -> bool:
    """Too small to match in any spelling but plain digits (see the module's doc)."""
    return abs(value) < 100 and len(value.normalize().as_tuple().digits) < 3


class LeakGuard:
    def __init__(self, private_facts: Sequence[str]) -> None:
        self.facts = tuple(private_facts)
        self._numbers: dict[Decimal, list[tuple[int, bool]]] = {}  # value -> (fact, weak)
        self._days: dict[tuple[int, int], list[tuple[int, int | None]]] = {}  # (month, day) -> (fact, year)
        self._phrases: list[tuple[int, str, re.Pattern[str]]] = []  # (fact, its first word, pattern)
        for i, fact in enumerate(self.facts):
            self._compile(i, fact)

    def _compile(self, i: int, fact: str) -> None:
        norm = normalize(fact)
        if not norm.text.strip():
            raise FactError(f"private fact {i} is empty")
        days = _date_hits(norm)
        taken = [(d.start, d.end) for d in days]
        numbers = [
            n for n in _number_hits(norm)
            if n.form not in ("ambiguous", "piece") and not any(s < n.end and n.start < e for s, e in taken)
        ]  # fmt: skip
        rest = list(fact)
        mentions: list[NumberHit | DateHit] = [*days, *numbers]
        for hit in mentions:
            rest[hit.start : hit.end] = " " * (hit.end - hit.start)
        words = _WORD.findall("".join(rest).casefold())
        bare = bool(days or numbers) and all(w in _UNIT_WORDS or len(w) <= 3 for w in words)
        for day_hit in days:
            day = day_hit.value
            entries = self._days.setdefault((day.month, day.day), [])
            if (i, day.year) not in entries:
                entries.append((i, day.year))
        for n in numbers:
            weak = is_weak(n.value)
            if weak and not bare and abs(n.value) < 10:
                continue
            entries_n = self._numbers.setdefault(n.value, [])
            if (i, weak) not in entries_n:
                entries_n.append((i, weak))
        if not bare:
            pattern = _phrase_pattern(norm.text)
            self._phrases.append((i, norm.text.split()[0].strip(_EDGE_PUNCTUATION), pattern))

    def find(self, text: str) -> LeakHit | None:
        """The first (leftmost) private fact `text` mentions, or None."""
        hits = self.find_all(text)
        return hits[0] if hits else None

    def find_all(self, text: str) -> list[LeakHit]:
        """The mentions of private facts in `text`, leftmost first: every number and date that is one, and
        the first occurrence of each phrase."""
        if not (self._numbers or self._days or self._phrases):
            return []
        norm = normalize(text)
        hits: list[LeakHit] = []
        if self._numbers:
            for n in _number_hits(norm):
                for fact, weak in self._numbers.get(n.value, ()):
                    if not weak or _plain(n):
                        hits.append(self._hit(fact, "number", text, n.start, n.end))
        if self._days:
            for d in _date_hits(norm):
                for fact, year in self._days.get((d.value.month, d.value.day), ()):
                    if year is None or d.value.year is None or year == d.value.year:
                        hits.append(self._hit(fact, "date", text, d.start, d.end))
        for fact, head, pattern in self._phrases:
            if head not in norm.text:
                continue  # the first word is a plain substring of any match: a cheap test before the regex
            m = pattern.search(norm.text)
            if m is not None:
                hits.append(self._hit(fact, "phrase", text, *norm.span(m.start(), m.end())))
        hits.sort(key=lambda h: (h.start, h.fact_index, h.end))
        return hits

    def check_strings(self, strings: Iterable[str]) -> LeakHit | None:
        """The first hit in the first string that has one; `string_index` says which string."""
        for n, s in enumerate(strings):
            if (hit := self.find(s)) is not None:
                return replace(hit, string_index=n)
        return None

    def _hit(self, fact: int, kind: Literal["number", "date", "phrase"], text: str, start: int, end: int) -> LeakHit:
        return LeakHit(fact, self.facts[fact], kind, start, end, text[start:end])


def _plain(hit: NumberHit) -> bool:
    return hit.form in _PLAIN_FORMS


def _phrase_pattern(folded: str) -> re.Pattern[str]:
    core = folded.strip().strip(_EDGE_PUNCTUATION) or folded.strip()
    body = r"\s+".join(re.escape(word) for word in core.split())
    head = r"(?<!\w)" if _spaced_word_char(core[0]) else ""
    tail = r"(?!\w)" if _spaced_word_char(core[-1]) else ""
    return re.compile(head + body + tail)


def _spaced_word_char(ch: str) -> bool:
    """A letter or digit of a script that puts spaces between words: only there is a word boundary
    meaningful (Chinese and Japanese run words together, so `猎鹰` must match inside `我们的猎鹰项目`)."""
    return bool(re.match(r"\w", ch)) and not ("\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff")
