"""Invite records: single use, expiry, constant-time secret check, and errors that do not leak state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clawroomd.core.errors import CLOSE_INVITE, LocalProtocolError, RemoteProtocolError
from clawroomd.core.invites import DEFAULT_TTL_MS, Invite, check_invite, new_invite

ROOM = "cr_0123456789abcdef"
SECRET = bytes(range(16))
NOW = 1_700_000_000_000


def _code(record: object, presented: Invite, now: int) -> str:
    with pytest.raises(RemoteProtocolError) as err:
        check_invite(record, presented, now)  # type: ignore[arg-type]
    assert err.value.close_code == CLOSE_INVITE
    return err.value.code


def test_valid_invite_is_accepted_until_used_or_expired() -> None:
    record = new_invite(ROOM, SECRET, NOW)
    assert record.expires_ms == NOW + DEFAULT_TTL_MS == NOW + 72 * 3600 * 1000
    assert repr(Invite(room_id=ROOM, secret=SECRET)) == f"Invite(room_id={ROOM!r})"  # secrets stay out of logs
    assert "secret_sha256" not in repr(record)
    check_invite(record, Invite(room_id=ROOM, secret=SECRET), NOW + DEFAULT_TTL_MS - 1)
    assert _code(replace(record, used=True), Invite(room_id=ROOM, secret=SECRET), NOW) == "invite_used"
    assert _code(record, Invite(room_id=ROOM, secret=SECRET), NOW + DEFAULT_TTL_MS) == "invite_expired"


def test_wrong_secret_or_room_is_bad_invite_whatever_the_record_state() -> None:
    record = new_invite(ROOM, SECRET, NOW)
    wrong = Invite(room_id=ROOM, secret=bytes(16))
    assert _code(record, wrong, NOW) == "bad_invite"
    # A guesser must not learn that an invite exists but was used or expired.
    assert _code(replace(record, used=True), wrong, NOW) == "bad_invite"
    assert _code(record, wrong, NOW + DEFAULT_TTL_MS * 2) == "bad_invite"
    assert _code(record, Invite(room_id="cr_ffffffff", secret=SECRET), NOW) == "bad_invite"


def test_bad_values_are_local_errors() -> None:
    for room, secret in (("cr_XYZ", SECRET), ("room", SECRET), (ROOM, bytes(15)), (ROOM, bytes(65))):
        with pytest.raises(LocalProtocolError):
            Invite(room_id=room, secret=secret)
    with pytest.raises(LocalProtocolError):
        new_invite(ROOM, b"short", NOW)
