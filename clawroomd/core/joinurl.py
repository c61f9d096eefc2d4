"""The join URL a host hands to a guest, and a strict parser that forgives what chat apps do to links.

    clawroom://join/<room-id>?peer=<host peer id>[&at=<host:port>]...&s=<invite secret, base64url>

Dial addresses are optional (none: find the peer id on the LAN). IPv6 hosts are written in brackets in
the URL and kept bare in `addrs`, ready for a socket call. The secret is ≥ 128 bits and single-use.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import LocalProtocolError
from .identity import parse_peer_id
from .ids import ROOM_ID_RULE, is_room_id
from .invites import MAX_SECRET_LEN, MIN_SECRET_LEN, Invite

SCHEME = "clawroom"
MAX_URL_LEN = 2048
MAX_ADDRS = 16
# What chat apps and people glue around a pasted link: brackets, quotes, backticks, sentence punctuation.
_LEADING = "<([{\"'`\u201c\u2018\u00ab"  # also curly quotes and guillemets
_TRAILING = ">)]}\"'`\u201d\u2019\u00bb.,;:!?"
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_PREFIX_RE = re.compile(r"^clawroom://join/", re.IGNORECASE)


def _bad(message: str) -> LocalProtocolError:
    return LocalProtocolError("bad_join_url", message)


def _strip_glue(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = text.strip().lstrip(_LEADING).rstrip(_TRAILING)
    return text


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _parse_secret(value: str) -> bytes:
    if "=" in value:
        raise _bad("the invite secret must not end in '=' padding")
    if not _B64URL_RE.match(value):
        raise _bad("the invite secret has characters outside base64url (A-Z a-z 0-9 - _)")
    if len(value) % 4 == 1:
        raise _bad("the invite secret has an impossible length (the link was cut off?)")
    try:
        secret = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the regex and length check rule these out
        raise _bad("the invite secret is not valid base64url") from None
    if _b64url(secret) != value:
        raise _bad("the invite secret is not canonical base64url (the link was altered?)")
    if len(secret) < MIN_SECRET_LEN:
        raise _bad(
            f"the invite secret is only {len(secret) * 8} bits, at least {MIN_SECRET_LEN * 8} are needed "
            "(the link was cut off?)"
        )
    if len(secret) > MAX_SECRET_LEN:
        raise _bad(f"the invite secret is longer than {MAX_SECRET_LEN} bytes")
    return secret


def _parse_addr(value: str) -> tuple[str, int]:
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise _bad(f"dial address {value!r}: an IPv6 address is written [address]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(f"dial address {value!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise _bad(f"dial address {value!r} has no port (expected host:port)")
        if ":" in host:
            raise _bad(f"dial address {value!r}: put an IPv6 address in brackets, [address]:port")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise _bad(f"dial address {value!r}: {host!r} is not an IPv4 address") from None
        elif not _HOSTNAME_RE.match(host):
            raise _bad(f"dial address {value!r}: {host!r} is not a host name")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _bad(f"dial address {value!r}: the port must be a number from 1 to 65535")
    if port_text != str(int(port_text)):
        raise _bad(f"dial address {value!r}: the port has leading zeros")
    return host, int(port_text)


def _format_addr(host: str, port: int) -> str:
    return f"[{quote(host, safe=':.')}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, kw_only=True)
class JoinURL:
    """What a host sends a guest to join: the room, the host's peer id, where to dial, the invite secret."""

    room_id: str
    host_peer_id: str
    addrs: tuple[tuple[str, int], ...] = ()
    secret: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not is_room_id(self.room_id):
            raise _bad(f"{self.room_id!r} is not a room id ({ROOM_ID_RULE})")
        try:
            canonical = parse_peer_id(self.host_peer_id)
        except LocalProtocolError as exc:
            raise _bad(f"the host peer id is wrong: {exc.message}") from None
        object.__setattr__(self, "host_peer_id", canonical)
        if len(self.addrs) > MAX_ADDRS:
            raise _bad(f"at most {MAX_ADDRS} dial addresses")
        for host, port in self.addrs:
            _parse_addr(_format_addr(host, port))
        if not MIN_SECRET_LEN <= len(self.secret) <= MAX_SECRET_LEN:
            raise _bad(f"the invite secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes")

    @property
    def invite(self) -> Invite:
        return Invite(room_id=self.room_id, secret=self.secret)

    def format(self) -> str:
        params = [f"peer={self.host_peer_id}"]
        params += [f"at={_format_addr(host, port)}" for host, port in self.addrs]
        params.append(f"s={_b64url(self.secret)}")
        return f"{SCHEME}://join/{self.room_id}?" + "&".join(params)

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> JoinURL:
        """Parse a pasted link; LocalProtocolError('bad_join_url') says what exactly is wrong."""
        if not isinstance(text, str):
            raise _bad("a join URL is text")
        text = _strip_glue(text)
        if not text:
            raise _bad("the join URL is empty")
        if len(text) > MAX_URL_LEN:
            raise _bad(f"the join URL is longer than {MAX_URL_LEN} characters")
        if not _PREFIX_RE.match(text):
            if "://" in text and not text.lower().startswith(f"{SCHEME}://"):
                raise _bad(f"not a clawroom link: it must start with {SCHEME}://join/")
            raise _bad(f"a join URL starts with {SCHEME}://join/")
        if any(ch.isspace() for ch in text):
            raise _bad("the join URL contains spaces or line breaks (was it split over lines?)")
        rest = text[len(f"{SCHEME}://join/") :]
        if "#" in rest:
            raise _bad("the join URL must not contain '#'")
        room_id, qmark, query = rest.partition("?")
        if not is_room_id(room_id):
            raise _bad(f"{room_id!r} is not a room id ({ROOM_ID_RULE})")
        if not qmark or not query:
            raise _bad("the join URL has no parameters: the host peer id and invite secret are missing")
        peer: str | None = None
        secret: bytes | None = None
        addrs: list[tuple[str, int]] = []
        for part in query.split("&"):
            key, eq, raw = part.partition("=")
            if not eq:
                raise _bad(f"parameter {part!r} has no value")
            try:
                value = unquote(raw, errors="strict")
            except UnicodeDecodeError:
                raise _bad(f"parameter {key!r} has percent-escapes that are not UTF-8") from None
            if key == "peer":
                if peer is not None:
                    raise _bad("the host peer id (peer=) is given twice")
                try:
                    peer = parse_peer_id(value)
                except LocalProtocolError as exc:
                    raise _bad(f"the host peer id is wrong: {exc.message}") from None
            elif key == "at":
                if len(addrs) == MAX_ADDRS:
                    raise _bad(f"more than {MAX_ADDRS} dial addresses")
                addrs.append(_parse_addr(value))
            elif key == "s":
                if secret is not None:
                    raise _bad("the invite secret (s=) is given twice")
                secret = _parse_secret(value)
            else:
                raise _bad(f"unknown parameter {key!r} (expected peer, at, s)")
        if peer is None:
            raise _bad("the host peer id (peer=) is missing")
        if secret is None:
            raise _bad("the invite secret (s=) is missing (the link was cut off?)")
        return cls(room_id=room_id, host_peer_id=peer, addrs=tuple(addrs), secret=secret)
