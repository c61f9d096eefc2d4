"""The one room-id rule (clawroomd.core.ids) and the layers that use it."""

from __future__ import annotations

import pytest

from clawroomd.core.errors import LocalProtocolError
from clawroomd.core.ids import check_room_id, is_room_id, new_room_id
from clawroomd.core.invites import Invite
from clawroomd.core.joinurl import JoinURL

GOOD = ["cr_" + "0" * 8, "cr_0123456789abcdef", "cr_" + "f" * 32]
BAD = [
    *("cr_" + "0" * n for n in (0, 7, 33, 64)),
    *("cr_0123ABCD", "CR_01234567", "cr_0123456g", "cr_01234567\n", " cr_01234567", "cr_../../x", ""),
]


@pytest.mark.parametrize("room_id", GOOD)
def test_room_ids_the_protocol_accepts(room_id: str) -> None:
    assert is_room_id(room_id) and check_room_id(room_id) == room_id
    Invite(room_id=room_id, secret=bytes(16))
    url = JoinURL(room_id=room_id, host_peer_id=_PEER, secret=bytes(16))
    assert JoinURL.parse(url.format()).room_id == room_id


@pytest.mark.parametrize("room_id", BAD)
def test_room_ids_every_layer_refuses(room_id: str) -> None:
    assert not is_room_id(room_id)
    with pytest.raises(LocalProtocolError) as ei:
        check_room_id(room_id)
    assert ei.value.code == "bad_room_id"
    with pytest.raises(LocalProtocolError):
        Invite(room_id=room_id, secret=bytes(16))
    with pytest.raises(LocalProtocolError):
        JoinURL(room_id=room_id, host_peer_id=_PEER, secret=bytes(16))


def test_not_text_is_no_room_id() -> None:
    assert not is_room_id(None) and not is_room_id(b"cr_01234567") and not is_room_id(12345678)


def test_new_room_id_takes_the_random_part_from_the_caller() -> None:
    assert new_room_id("0123456789abcdef") == "cr_0123456789abcdef"
    for bad in ("", "abc", "0123456789ABCDEF", "g" * 16, "0" * 33):
        with pytest.raises(ValueError):
            new_room_id(bad)


def _peer() -> str:
    from clawroomd.core.identity import Identity

    return Identity.from_seed(bytes(32)).peer_id


_PEER = _peer()
