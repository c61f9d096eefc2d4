# The full-width and CJK characters in this file are the spellings it reads, not look-alike typos.
# ruff: noqa: RUF002
"""One normalised view of a text, shared by every reader so that spellings meet in one form.

Readers run on `Normalized.text`: lower-cased (full Unicode case folding), every Unicode decimal digit as
its ASCII digit, full-width ASCII as ASCII, every space separator (no-break, narrow no-break, thin, figure,
ideographic) as a plain space, and invisible format characters (zero-width space, soft hyphen, ...)
dropped, so that `４８\u200b５００` reads as `48500`. `span()` maps a span back to the original text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_FULLWIDTH_FIRST, _FULLWIDTH_LAST, _FULLWIDTH_SHIFT = 0xFF01, 0xFF5E, 0xFEE0
_PUNCTUATION = {"\u2019": "'", "\u2018": "'", "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2013": "-"}
_folded: dict[str, str] = {}  # memo per character: folding is pure, and most texts repeat few characters


def _fold_char(ch: str) -> str:
    out = _folded.get(ch)
    if out is not None:
        return out
    code = ord(ch)
    if _FULLWIDTH_FIRST <= code <= _FULLWIDTH_LAST:
        out = chr(code - _FULLWIDTH_SHIFT).lower()
    elif ch in _PUNCTUATION:
        out = _PUNCTUATION[ch]
    else:
        category = unicodedata.category(ch)
        if category == "Nd":
            out = str(unicodedata.decimal(ch))
        elif category == "Zs":
            out = " "
        elif category == "Cf":
            out = ""
        else:
            out = ch.casefold()
    if len(_folded) < 65536:
        _folded[ch] = out
    return out


_LATIN_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class Normalized:
    original: str
    text: str
    index: tuple[int, ...] | None  # index[i]: where text[i] came from in original; None when 1:1
    # The Latin words of `text`, so a reader can skip a text without a single word it looks for: a set
    # test is far cheaper than a regex pass over every position.
    words: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", frozenset(_LATIN_WORD.findall(self.text)))

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of `original` that `text[start:end]` was made from."""
        if self.index is None:
            return start, end
        if start >= end:
            at = self.index[start] if start < len(self.index) else len(self.original)
            return at, at
        return self.index[start], self.index[end - 1] + 1


_ASCII_LOWER = {ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def normalize(text: str) -> Normalized:
    if text.isascii():
        return Normalized(text, text.lower(), None)
    # When every character folds to exactly one, one str.translate does it and spans stay 1:1; only a
    # text with a character that vanishes or expands (zero-width space, `ß`) pays for the index map.
    table: dict[int, str] = {}
    for ch in set(text):
        if not ch.isascii():
            folded = _fold_char(ch)
            if len(folded) != 1:
                break
            table[ord(ch)] = folded
    else:
        return Normalized(text, text.translate(table | _ASCII_LOWER), None)
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        folded = ch.lower() if ch.isascii() else _fold_char(ch)
        parts.append(folded)
        index.extend([i] * len(folded))
    return Normalized(text, "".join(parts), tuple(index))
