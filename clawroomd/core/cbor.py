"""Deterministic CBOR (RFC 8949 §4.2.1) and a strict decoder for bytes that came from a peer.

A peer's bytes are accepted only if they are exactly what we would have encoded for the same value:
that one check rules out non-shortest integers, unsorted or duplicate map keys, indefinite lengths and
every other alternative spelling, so the hash of an event is a function of its meaning alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from .errors import LocalProtocolError

MAX_DEPTH = 16
_SCALARS = (int, str, bytes, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)


def encode(value: Any) -> bytes:
    """Canonical CBOR; only ints, text, bytes, bools, null, lists and text/int-keyed maps."""
    _check_types(value, 0, LocalProtocolError)
    return bytes(cbor2.dumps(value, canonical=True))


def decode(data: bytes, *, max_size: int, tags: frozenset[int] = frozenset()) -> Any:
    """Decode a peer's CBOR strictly; any problem raises LocalProtocolError('malformed'|'too_large').

    Callers validating remote input re-raise with `as_remote`. Tag contents come back as tuples
    (cbor2 6 semantics); plain arrays as lists and maps as dicts.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError("malformed", "expected CBOR bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise LocalProtocolError("too_large", f"CBOR item of {len(data)} bytes exceeds the {max_size}-byte limit")
    if not data:
        raise LocalProtocolError("malformed", "empty CBOR item")

    def tag_hook(tag: cbor2.CBORTag, _immutable: bool) -> Any:  # cbor2 6 signature
        if tag.tag not in tags:
            raise ValueError(f"CBOR tag {tag.tag} is not allowed here")
        return tag

    try:
        value = cbor2.loads(
            data,
            tag_hook=tag_hook,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, LookupError, MemoryError) as exc:
        raise LocalProtocolError("malformed", f"undecodable CBOR: {exc}") from None
    value = _thaw(value, 0)
    try:
        again = cbor2.dumps(value, canonical=True)
    except (ValueError, TypeError) as exc:  # pragma: no cover - _thaw already restricted the types
        raise LocalProtocolError("malformed", f"CBOR value cannot be re-encoded: {exc}") from None
    if again != data:
        raise LocalProtocolError("malformed", "CBOR is not in deterministic (canonical) encoding")
    return value


def _thaw(value: Any, depth: int) -> Any:
    """Turn cbor2's frozen containers into plain ones and refuse types the protocol never uses."""
    if depth > MAX_DEPTH:
        raise LocalProtocolError("malformed", "CBOR nested too deeply")
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is dict or kind is list:
        # What cbor2 gives outside tags, i.e. nearly everything: exact types, no call per scalar item.
        if value and depth == MAX_DEPTH:
            raise LocalProtocolError("malformed", "CBOR nested too deeply")
        if kind is list:
            return [v if type(v) in _SCALAR_TYPES else _thaw(v, depth + 1) for v in value]
        out = {}
        for k, v in value.items():
            if type(k) is not str and type(k) is not int:
                raise LocalProtocolError("malformed", "CBOR map keys must be text or integers")
            out[k] = v if type(v) in _SCALAR_TYPES else _thaw(v, depth + 1)
        return out
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _thaw(value.value, depth + 1))
    if isinstance(value, list):
        return [_thaw(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_thaw(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, int | str) or isinstance(k, bool):
                raise LocalProtocolError("malformed", "CBOR map keys must be text or integers")
            out[k] = _thaw(v, depth + 1)
        return out
    raise LocalProtocolError("malformed", f"CBOR type {type(value).__name__} is not used by this protocol")


def _check_types(value: Any, depth: int, err: type[LocalProtocolError]) -> None:
    if depth > MAX_DEPTH:
        raise err("malformed", "value nested too deeply to encode")
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return
    if kind is dict and depth < MAX_DEPTH:  # the common case, without a call per scalar item
        for k, v in value.items():
            if type(k) is not str and type(k) is not int:
                raise err("malformed", f"map key {k!r} is neither text nor an integer")
            if type(v) not in _SCALAR_TYPES:
                _check_types(v, depth + 1, err)
        return
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, cbor2.CBORTag):
        _check_types(value.value, depth + 1, err)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_types(v, depth + 1, err)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, int | str) or isinstance(k, bool):
                raise err("malformed", f"map key {k!r} is neither text nor an integer")
            _check_types(v, depth + 1, err)
    else:
        raise err("malformed", f"{type(value).__name__} cannot be encoded in this protocol")
