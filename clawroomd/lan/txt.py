"""What a clawroomd daemon advertises on the LAN and how a received advert is read (pure, no I/O).

One DNS-SD service of type ``_clawroom._tcp.local.`` per daemon; its TXT record holds exactly

    id=<peer id>   name=<display name>   v=<protocol version>

and never a room id, a topic or anything else about the rooms. Every field of a received advert is
untrusted (anyone on the LAN can advertise anything): the peer id is only a claim until a handshake
proves it, the name is bounded and shown with control characters made visible.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..core.errors import LocalProtocolError
from ..core.events import PROTOCOL_VERSION
from ..core.identity import parse_peer_id

SERVICE_TYPE = "_clawroom._tcp.local."
MAX_NAME = 48  # characters of a display name (the DNS-SD instance name is at most 63 bytes)
MAX_TXT_VALUE = 200  # bytes of one TXT value we read at all


class BadAdvert(ValueError):
    """A TXT record that is not a clawroom advert we can use; the message says why."""


@dataclass(frozen=True, kw_only=True)
class Advert:
    peer_id: str  # canonical, checksum verified (but not yet proven by a handshake)
    name: str
    version: int


def clean_name(text: str) -> str:
    """A display name fit to advertise: one line, no control characters, at most MAX_NAME characters."""
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()[:MAX_NAME]


def encode_txt(peer_id: str, name: str) -> dict[str, str]:
    return {"id": parse_peer_id(peer_id), "name": clean_name(name), "v": str(PROTOCOL_VERSION)}


def instance_name(peer_id: str, name: str) -> str:
    """The DNS-SD instance label: the name plus a peer id prefix, so two daemons named alike do not clash."""
    short = parse_peer_id(peer_id).replace("-", "")[:8]
    base = clean_name(name).replace(".", " ") or "clawroomd"
    while len(f"{base} [{short}]".encode()) > 63:
        base = base[:-1]
    return f"{base} [{short}]"


def _text(props: dict[bytes, bytes | None], key: bytes) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if len(value) > MAX_TXT_VALUE:
        raise BadAdvert(f"TXT {key.decode()} is longer than {MAX_TXT_VALUE} bytes")
    return value.decode("utf-8", errors="replace")


def parse_txt(props: dict[bytes, bytes | None]) -> Advert:
    """Read a TXT record (as python-zeroconf gives it: bytes keys, bytes or None values).

    Raises BadAdvert when `id` is missing or not a valid peer id, or `v` is missing, not a number, or
    not the version we speak (such a daemon could not talk to us). Unknown keys are ignored (a later
    version may add some); a missing name is empty."""
    raw_id = _text(props, b"id")
    if not raw_id:
        raise BadAdvert("no id= in the TXT record")
    try:
        peer_id = parse_peer_id(raw_id)
    except LocalProtocolError as exc:
        raise BadAdvert(f"id= is not a peer id: {exc.message}") from None
    raw_v = _text(props, b"v")
    if raw_v is None or not raw_v.isascii() or not raw_v.isdigit() or len(raw_v) > 6:
        raise BadAdvert(f"v= must be a protocol version number, not {raw_v!r}")
    if int(raw_v) != PROTOCOL_VERSION:
        raise BadAdvert(f"protocol version {int(raw_v)}; we speak {PROTOCOL_VERSION}")
    return Advert(peer_id=peer_id, name=clean_name(_text(props, b"name") or ""), version=int(raw_v))
