"""The action a model must answer with: its JSON schema, and the check that turns a model's text into the
agent command's reply (README "Agent command protocol") or says, in words the model can act on, what
is wrong with it.

The schema is flat (one object, every key present, the ones an action does not use null) because that
is the shape every structured-output implementation accepts: OpenAI's strict mode needs every property
required and no `oneOf`; Ollama, vLLM and llama.cpp turn it into a grammar. The check is stricter than
the schema (field names, move kinds, standing proposals, sizes) and also reads plain-JSON replies from
servers without structured output, which may wrap the object in prose or a ``` fence.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clawroomd.core.events import MAX_MOVES, MAX_REASON, MAX_REF, MAX_REFS, MAX_TEXT, MAX_VALUE

ACTIONS = ("message", "close", "cancel", "ask_owner", "wait")
OPS = ("propose", "accept", "reject")
MAX_QUESTION = 2000
MAX_OPTIONS = 10
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


class BadReply(ValueError):
    """A model reply that is not a usable action; the message is said back to the model."""


def _nullable(kind: str, description: str) -> dict[str, Any]:
    return {"type": [kind, "null"], "description": description}


def action_schema(field_names: list[str]) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "string", "description": "one of the room's fields"}
    if field_names:
        field["enum"] = list(field_names)
    move = {
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": list(OPS)},
            "field": field,
            "value": _nullable("string", "propose: the value offered; accept: the peer's value, or null; reject: null"),
            "refs": {
                **_nullable("array", "provenance: fact:<id> (a confirmed fact), answer:<question_id> (an approval)"),
                "items": {"type": "string"},
            },
        },
        "required": ["op", "field", "value", "refs"],
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {
        "action": {"type": "string", "enum": list(ACTIONS)},
        "text": _nullable("string", "message: what you say to the other side"),
        "moves": {**_nullable("array", "message: moves on the fields"), "items": move},
        "reason": _nullable("string", "cancel: why"),
        "question": _nullable("string", "ask_owner: the question for your owner"),
        "options": {**_nullable("array", "ask_owner: answers to choose from"), "items": {"type": "string"}},
        "field": _nullable("string", "ask_owner: the field the question is about"),
        "value": _nullable("string", "ask_owner: the value you want approved"),
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def extract_json(content: str) -> Any:
    """The JSON object in a model's text: the whole text, else a ``` fence, else the outermost braces."""
    text = _THINK_RE.sub("", content).strip()
    candidates = [text, *(m.strip() for m in _FENCE_RE.findall(text))]
    if (start := text.find("{")) >= 0 and (end := text.rfind("}")) > start:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise BadReply("the reply is not a JSON object; answer with exactly one JSON object and nothing else")


def _text(obj: dict[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise BadReply(f"{obj.get('action')} needs `{key}` as a non-empty string")
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadReply(f"`{key}` must be a non-empty string or null")
    if len(value) > limit:
        raise BadReply(f"`{key}` is {len(value)} characters long; at most {limit}")
    return value


def check_action(content: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The agent-command reply for a model's text (BadReply when it is not a usable action)."""
    obj = extract_json(content)
    if not isinstance(obj, dict):
        raise BadReply("the reply must be one JSON object, not a list or a bare value")
    action = obj.get("action")
    if action is None and ("text" in obj or "moves" in obj):
        action = "message"
    if action not in ACTIONS:
        raise BadReply(f"`action` must be one of {', '.join(ACTIONS)}, not {action!r}")
    if action == "message":
        return _message(obj, doc)
    if action == "cancel":
        return {"action": "cancel", "reason": _text(obj, "reason", MAX_REASON, required=True)}
    if action == "ask_owner":
        out: dict[str, Any] = {"action": "ask_owner", "question": _text(obj, "question", MAX_QUESTION, required=True)}
        options = obj.get("options")
        if options:
            if (
                not isinstance(options, list)
                or len(options) > MAX_OPTIONS
                or not all(isinstance(o, str) and o.strip() for o in options)
            ):
                raise BadReply(f"`options` is null or a list of at most {MAX_OPTIONS} non-empty strings")
            out["options"] = options
        for key in ("field", "value"):
            if (v := _text(obj, key, MAX_VALUE, required=False)) is not None:
                out[key] = v
        if "field" in out and out["field"] not in _field_names(doc):
            raise BadReply(f"ask_owner: {out['field']!r} is not a field of this room ({_names(doc)})")
        return out
    return {"action": action}


def _field_names(doc: dict[str, Any]) -> list[str]:
    return [f["name"] for f in doc["room"].get("fields", [])]


def _names(doc: dict[str, Any]) -> str:
    return "fields: " + ", ".join(_field_names(doc))


def _message(obj: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    room = doc["room"]
    if room.get("max_turns") is not None and room.get("turns", 0) >= room["max_turns"]:
        raise BadReply("all turns are used: no message is possible; answer close, cancel or wait")
    text = obj.get("text") or ""
    raw = obj.get("moves") or []
    if not isinstance(text, str):
        raise BadReply("`text` must be a string")
    if len(text) > MAX_TEXT:
        raise BadReply(f"`text` is {len(text)} characters long; at most {MAX_TEXT}")
    if not isinstance(raw, list):
        raise BadReply("`moves` must be a list of moves or null")
    if len(raw) > MAX_MOVES:
        raise BadReply(f"at most {MAX_MOVES} moves per message")
    if not text.strip() and not raw:
        raise BadReply("a message needs `text` or at least one move")
    me = doc["you"]
    fields = {f["name"]: f for f in room.get("fields", [])}
    moves = []
    for m in raw:
        if not isinstance(m, dict):
            raise BadReply('each move is an object {"op", "field", "value"}')
        op, name, value = m.get("op"), m.get("field"), m.get("value")
        if op not in OPS:
            raise BadReply(f"move op must be one of {', '.join(OPS)}, not {op!r}")
        if name not in fields:
            raise BadReply(f"{name!r} is not a field of this room ({_names(doc)})")
        standing = {k: v for k, v in fields[name].get("proposals", {}).items() if k != me}
        peer_value = next(iter(standing.values()), None)
        move: dict[str, Any] = {"op": op, "field": name}
        if op == "propose":
            if not isinstance(value, str) or not value.strip():
                raise BadReply(f"propose {name}: `value` must be the value you offer, a non-empty string")
            if len(value) > MAX_VALUE:
                raise BadReply(f"propose {name}: the value is {len(value)} characters long; at most {MAX_VALUE}")
            move["value"] = value
        elif peer_value is None:
            raise BadReply(f"{op} {name}: the other side has no standing proposal for {name}; propose a value instead")
        elif op == "accept":
            if value is not None and value != peer_value:
                raise BadReply(
                    f"accept {name}: the other side proposed {peer_value!r}, not {value!r}; accept exactly that "
                    "(value null) or propose your own value"
                )
            move["value"] = peer_value  # what we were shown: the daemon binds the accept to it anyway
        refs = m.get("refs") or []
        if (
            not isinstance(refs, list)
            or len(refs) > MAX_REFS
            or not all(isinstance(r, str) and 0 < len(r) <= MAX_REF for r in refs)
        ):
            raise BadReply(f"{op} {name}: `refs` is null or a list of at most {MAX_REFS} short strings such as fact:f1")
        if refs:
            move["refs"] = refs
        moves.append(move)
    return {"text": text, "moves": moves}
