"""Single-use, expiring room invites: what the host stores and how it checks what a guest presents.

The host keeps only SHA-256 of the secret, so a leaked database cannot be replayed as an invite. Storing
records (and marking them used atomically with the join) is the daemon's job; this module is pure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass

from .errors import CLOSE_INVITE, LocalProtocolError, RemoteProtocolError
from .ids import check_room_id

MIN_SECRET_LEN = 16  # 128 bits
MAX_SECRET_LEN = 64
DEFAULT_TTL_MS = 72 * 3600 * 1000


def check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or not MIN_SECRET_LEN <= len(secret) <= MAX_SECRET_LEN:
        raise LocalProtocolError("bad_secret", f"an invite secret is {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes")
    return secret


@dataclass(frozen=True, kw_only=True)
class Invite:
    """What a guest presents: the room it wants and the secret from the join URL."""

    room_id: str
    secret: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        check_room_id(self.room_id)
        check_secret(self.secret)


@dataclass(frozen=True, kw_only=True)
class JoinRequest:
    """What a guest presents instead of an invite to join a room by its id alone (LAN join, SPEC §13.11):
    the host's owner must approve the guest's identity, so there is no secret."""

    room_id: str

    def __post_init__(self) -> None:
        check_room_id(self.room_id)


# What a guest may present in handshake message 3: an invite, a join request, or nothing (a reconnect).
Presented = Invite | JoinRequest


def secret_hash(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


@dataclass(frozen=True, kw_only=True)
class InviteRecord:
    """What the host stores for one issued invite."""

    room_id: str
    secret_sha256: bytes = dataclasses.field(repr=False)
    expires_ms: int
    used: bool = False

    def __post_init__(self) -> None:
        check_room_id(self.room_id)
        if len(self.secret_sha256) != 32:
            raise LocalProtocolError("bad_secret", "secret_sha256 is a 32-byte digest")


def new_invite(room_id: str, secret: bytes, now_ms: int, ttl_ms: int = DEFAULT_TTL_MS) -> InviteRecord:
    """The record to store for a freshly drawn secret (the caller draws it from its RNG)."""
    check_secret(secret)
    return InviteRecord(room_id=room_id, secret_sha256=secret_hash(secret), expires_ms=now_ms + ttl_ms)


def matches(record: InviteRecord, presented: Invite) -> bool:
    """The secret (in constant time) and the room both match; says nothing of use or expiry."""
    secret_ok = hmac.compare_digest(secret_hash(presented.secret), record.secret_sha256)
    return secret_ok and presented.room_id == record.room_id


def check_invite(record: InviteRecord, presented: Invite, now_ms: int) -> None:
    """Accept `presented` against `record` or raise RemoteProtocolError bad_invite/invite_used/invite_expired.

    The secret is checked first and in constant time, so only a holder of the secret learns whether the
    invite was used or expired; the room id is public (it is in the URL), so comparing it is not secret.
    """
    if not matches(record, presented):
        raise RemoteProtocolError("bad_invite", "the invite secret is not valid for this room", CLOSE_INVITE)
    if record.used:
        raise RemoteProtocolError("invite_used", "this invite has already been used to join", CLOSE_INVITE)
    if now_ms >= record.expires_ms:
        raise RemoteProtocolError(
            "invite_expired", "this invite has expired; ask the host for a new link", CLOSE_INVITE
        )
