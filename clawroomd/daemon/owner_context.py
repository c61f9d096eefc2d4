"""An owner's context (DESIGN §5, issue 9 item 1): who the owner is and what the agent negotiates from.

Pure: no files, no clock. `OwnerContext.from_json` is the one strict reader, used for API params and for
the files alike (`context_store` writes them), so a value the daemon accepted once always reads back.

Fields (JSON keys): `owner_name` (required), `role`, `task_context`, `language` (a text or null),
`goals`, `constraints`, `priorities`, `private_facts`, `limits` (lists of texts), `confirmed_facts` (a
list of texts or {"id", "text"}; each gets an id such as `f1` that a move may cite as `fact:f1`).

Confirmed facts may be said in the room; private facts never leave this machine; limits are what the
agent may agree without asking (`price<=52000`), kept as the owner wrote them. Only their shape is
checked here: `check_limit` is the hook the limit reader (clawroomd.owner.limits) plugs into.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

PROFILE_NAME_RULE = "1 to 32 lowercase letters, digits, '_' or '-', starting with a letter or a digit"
_PROFILE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DEFAULT_PROFILE = "default"

FACT_ID_RULE = "1 to 32 lowercase letters, digits or '_', starting with a letter (e.g. f1)"
_FACT_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_AUTO_ID_RE = re.compile(r"^f([1-9][0-9]{0,8})$")
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$")  # a BCP 47 tag: en, de-CH, zh-Hant-TW

MAX_NAME = 200  # owner_name, role
MAX_TASK_CONTEXT = 4000
MAX_ITEM = 1000  # one goal, constraint, priority, fact or limit
MAX_ITEMS = 64  # per list
MAX_JSON_BYTES = 64 * 1024  # the whole context as stored
_TEXTS = {"owner_name": MAX_NAME, "role": MAX_NAME, "task_context": MAX_TASK_CONTEXT, "language": 35}
_LISTS = ("goals", "constraints", "priorities", "private_facts", "limits")
KEYS = frozenset((*_TEXTS, *_LISTS, "confirmed_facts"))
# The text beside the context wherever an agent reads it (agent stdin, context.show).
PRIVATE_NOTICE = (
    "private_facts are for you alone and never to be shared: do not write them, or anything that reveals "
    "them (a number in another spelling included), into any message, value, reason or summary for the peer. "
    "confirmed_facts may be said, and cited as fact:<id>."
)


class ContextError(ValueError):
    """A context that may not be stored; the message names the field and says what is wrong."""


def check_profile_name(name: object) -> str:
    if not isinstance(name, str) or not _PROFILE_RE.match(name):
        raise ContextError(f"{name!r} is not a profile name ({PROFILE_NAME_RULE})")
    return name


def check_limit(text: str) -> None:
    """An authority limit must read as one (clawroomd.owner.limits): unknown syntax is refused here, when
    the context is written, never found out when a move is checked."""
    from ..owner.limits import LimitError, parse_limit

    try:
        parse_limit(text)
    except LimitError as err:
        raise ContextError(f"limits: {err}") from None


@dataclass(frozen=True, kw_only=True)
class ConfirmedFact:
    id: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text}


@dataclass(frozen=True, kw_only=True)
class OwnerContext:
    owner_name: str
    role: str | None = None
    task_context: str | None = None
    language: str | None = None
    goals: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    confirmed_facts: tuple[ConfirmedFact, ...] = ()
    private_facts: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: object, *, base: OwnerContext | None = None) -> OwnerContext:
        """A context from its JSON object, checked strictly (ContextError says what and where).

        With `base`, the object is a change: each key given replaces that field of `base`, keys not given
        keep it. A confirmed fact given as plain text keeps the id it had in `base` (same text), so a
        `fact:<id>` cited earlier still names it; new ones get the next free `f<n>`."""
        if not isinstance(data, Mapping):
            raise ContextError("an owner context is a JSON object")
        unknown = sorted(str(k) for k in data if k not in KEYS)
        if unknown:
            raise ContextError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(sorted(KEYS))}"
            )
        values: dict[str, Any] = {}
        for key, limit in _TEXTS.items():
            if key in data:
                multiline = key == "task_context"
                values[key] = _text(data[key], key, limit, nullable=key != "owner_name", multiline=multiline)
        for key in _LISTS:
            if key in data:
                values[key] = _texts(data[key], key)
        if "confirmed_facts" in data:
            values["confirmed_facts"] = _facts(data["confirmed_facts"], base.confirmed_facts if base else ())
        if base is not None:
            ctx = replace(base, **values)
        elif "owner_name" not in values:
            raise ContextError("owner_name is required (the owner's name, e.g. alice)")
        else:
            ctx = cls(**values)
        ctx._check_whole()
        return ctx

    def _check_whole(self) -> None:
        if self.language is not None and not _LANGUAGE_RE.match(self.language):
            raise ContextError(f"language {self.language!r} is not a language tag such as en, de or pt-BR")
        for limit in self.limits:
            check_limit(limit)
        size = len(json.dumps(self.to_json(), ensure_ascii=False).encode())
        if size > MAX_JSON_BYTES:
            raise ContextError(f"the context is too large ({size} bytes; at most {MAX_JSON_BYTES})")

    def to_json(self) -> dict[str, Any]:
        """The stored form (owner_context.json, profiles/<name>.json) and what context.show returns."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "confirmed_facts":
                out[f.name] = [fact.to_json() for fact in value]
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def card(self) -> dict[str, Any]:
        """What the status card shows of this owner (as the product page's "Owner Context"): never a fact."""
        return {
            "owner_name": self.owner_name,
            "role": self.role,
            "goals": list(self.goals),
            "constraints": list(self.constraints),
            "priorities": list(self.priorities),
            "language": self.language,
        }

    def for_agent(self) -> dict[str, Any]:
        """The `owner` object of the agent's stdin document: the whole context, private facts labelled."""
        return {**self.to_json(), "private_facts_notice": PRIVATE_NOTICE}


def _bad_char(text: str, *, multiline: bool) -> str | None:
    for ch in text:
        if multiline and ch in "\n\t":
            continue
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):  # Cs: a lone surrogate, which JSON can spell
            return f"U+{ord(ch):04X}"
    return None


def _text(value: object, key: str, limit: int, *, nullable: bool = False, multiline: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ContextError(f"{key} must be a text{' or null' if nullable else ''}, not {type(value).__name__}")
    if not value.strip():
        raise ContextError(f"{key} is empty; leave it out instead" + (" (or make it null)" if nullable else ""))
    if len(value) > limit:
        raise ContextError(f"{key} is {len(value)} characters long; at most {limit}")
    if (bad := _bad_char(value, multiline=multiline)) is not None:
        if multiline:
            raise ContextError(f"{key} holds a control character ({bad}); only newlines and tabs are allowed")
        raise ContextError(f"{key} holds a control character or line break ({bad}); it must be one line of text")
    return value


def _items(value: object, key: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ContextError(f"{key} must be a list, not {type(value).__name__}")
    if len(value) > MAX_ITEMS:
        raise ContextError(f"{key} has {len(value)} entries; at most {MAX_ITEMS}")
    return list(value)


def _texts(value: object, key: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_items(value, key)):
        text = _text(item, f"{key}[{i}]", MAX_ITEM)
        assert text is not None
        out.append(text)
    if len(set(out)) != len(out):
        raise ContextError(f"{key} lists the same entry twice")
    return tuple(out)


def _facts(value: object, previous: tuple[ConfirmedFact, ...]) -> tuple[ConfirmedFact, ...]:
    items = _items(value, "confirmed_facts")
    given: list[tuple[str | None, str]] = []
    for i, item in enumerate(items):
        key = f"confirmed_facts[{i}]"
        if isinstance(item, Mapping):
            extra = sorted(str(k) for k in item if k not in ("id", "text"))
            if extra or "text" not in item:
                raise ContextError(f'{key} is a text or {{"id": ..., "text": ...}}')
            fact_id = item.get("id")
            if fact_id is not None and (not isinstance(fact_id, str) or not _FACT_ID_RE.match(fact_id)):
                raise ContextError(f"{key}.id {fact_id!r} is not a fact id ({FACT_ID_RULE})")
            text = _text(item["text"], f"{key}.text", MAX_ITEM)
        else:
            fact_id, text = None, _text(item, key, MAX_ITEM)
        assert text is not None
        given.append((fact_id, text))
    texts = [t for _, t in given]
    if len(set(texts)) != len(texts):
        raise ContextError("confirmed_facts lists the same fact twice")
    known = {f.text: f.id for f in previous}
    ids = [fid if fid is not None else known.get(text) for fid, text in given]
    taken = [i for i in ids if i is not None]
    if len(set(taken)) != len(taken):
        raise ContextError("two confirmed facts have the same id")
    numbers = [int(m.group(1)) for i in (*taken, *(f.id for f in previous)) if (m := _AUTO_ID_RE.match(i))]
    next_n = max(numbers, default=0) + 1
    out = []
    for fid, (_, text) in zip(ids, given, strict=True):
        if fid is None:
            fid, next_n = f"f{next_n}", next_n + 1
        out.append(ConfirmedFact(id=fid, text=text))
    return tuple(out)
