"""Sids minted in one place (clawroomd.core.sids): each is a valid wire sid, and no two sources collide."""

from __future__ import annotations

import itertools

import pytest

from clawroomd.core import sids
from clawroomd.core.errors import LocalProtocolError
from clawroomd.core.events import Header

# Inputs chosen to try to forge another namespace's sid through this one.
CLIENT_SIDS = ["x", "create", "join", "l-00ff", "cancel-1a2b", "close-3", "timeout-3", "a-b", "A_z-9", "9" * 60]
TOKENS = ["0", "00ff", "1a2b", "f" * 32]
SEQS = [0, 1, 3, 2**32]


def _minted() -> dict[str, list[str]]:
    """Every namespace's sids for the inputs above, keyed by the tag before the first '-'."""
    return {
        "create": [sids.create()],
        "join": [sids.joined()],
        "close": [sids.follow_up_close(n) for n in SEQS],
        "timeout": [sids.timeout(n) for n in SEQS],
        "l": [sids.local(t) for t in TOKENS],
        "cancel": [sids.cancel(t) for t in TOKENS],
        "a": [sids.from_client(s) for s in CLIENT_SIDS],
    }


def test_every_minted_sid_is_a_wire_sid() -> None:
    for sid in itertools.chain.from_iterable(_minted().values()):
        assert sids.is_sid(sid), sid
        Header(room="cr_01234567", seq=0, prev=bytes(32), author="host", key=bytes(32), ts=0, sid=sid)


def test_namespaces_cannot_collide() -> None:
    """Each sid's text up to its first '-' names its source, and the names differ: no input to one
    builder can give another builder's sid (a client sid can never equal a local or cancel sid)."""
    minted = _minted()
    for tag, group in minted.items():
        assert all(sid.partition("-")[0] == tag for sid in group), (tag, group)
    for (_, a), (_, b) in itertools.combinations(minted.items(), 2):
        assert not set(a) & set(b)


def test_core_room_mints_through_sids() -> None:
    assert (sids.create(), sids.joined()) == ("create", "join")
    assert (sids.follow_up_close(7), sids.timeout(7)) == ("close-7", "timeout-7")
    assert (sids.local("00ff"), sids.cancel("00ff"), sids.from_client("mine")) == ("l-00ff", "cancel-00ff", "a-mine")


@pytest.mark.parametrize("bad", ["", "x" * 61, "a.b", "a:b", "a b", "é", "٣", "a\n", None, 5])
def test_client_sid_rule(bad: object) -> None:
    """ASCII only: str.isalnum would let 'é' or '٣' through to a wire sid that the events refuse."""
    assert not sids.is_client_sid(bad)
    with pytest.raises(ValueError):
        sids.from_client(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "x" * 65, "a b", "é", "a\n", "a/b"])
def test_wire_sid_rule(bad: str) -> None:
    assert not sids.is_sid(bad)
    with pytest.raises(LocalProtocolError):
        Header(room="cr_01234567", seq=0, prev=bytes(32), author="host", key=bytes(32), ts=0, sid=bad)


@pytest.mark.parametrize("token", ["", "00FF", "xyz", "0" * 33, "l-1"])
def test_random_parts_are_lowercase_hex(token: str) -> None:
    with pytest.raises(ValueError):
        sids.local(token)
    with pytest.raises(ValueError):
        sids.cancel(token)


@pytest.mark.parametrize("seq", [-1, True, 1.0, "1"])
def test_seqs_are_counts(seq: object) -> None:
    with pytest.raises(ValueError):
        sids.follow_up_close(seq)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sids.timeout(seq)  # type: ignore[arg-type]
