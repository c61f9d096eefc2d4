"""A real daemon refusing bad local-API values as `bad_value` (never `internal`), and a forged guest
submission closing the peer link with the close code the one mapping gives its error code."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from roompair import MALLORY

from clawroomd.client import ApiError
from clawroomd.core.envelope import open_envelope, seal
from clawroomd.core.errors import CLOSE_BAD_SIGNATURE
from clawroomd.core.events import Header, Joined
from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite
from clawroomd.core.joinurl import JoinURL
from clawroomd.link import LinkClosed, dial_peer
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
JOIN_URL = (
    "clawroom://join/cr_0123456789abcdef?peer=BIU336K-6U6BFBI-EWFGBCR-WKPZT5W-RWL4TEJ-CFID3XQ-JH33S6L-ILNFLQ5"
    "&at=127.0.0.1:9&s=AAECAwQFBgcICQoLDA0ODw"
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("refusals") / "d").start()
    yield d
    d.stop()


def refusal(d: DaemonProcess, method: str, **params: Any) -> tuple[str, str]:
    with pytest.raises(ApiError) as err:
        d.call(method, **params)
    return err.value.code, err.value.message


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("room.create", {"topic": "a\ud800b", "fields": ["x"]}, "topic"),
        ("room.create", {"topic": "t", "goal": "\udfff", "fields": ["x"]}, "goal"),
        ("room.create", {"topic": "t", "label": "x\udc00", "fields": ["x"]}, "label"),
        ("room.create", {"topic": "t", "fields": [{"name": "x", "description": "\ud83d"}]}, "fields"),
        ("room.join", {"join_url": JOIN_URL, "label": "\ud800"}, "label"),
    ],
)
def test_lone_surrogates_are_bad_value(daemon: DaemonProcess, method: str, params: dict[str, Any], name: str) -> None:
    rooms = daemon.call("room.list")["rooms"]
    code, message = refusal(daemon, method, **params)
    assert code == "bad_value" and repr(name) in message
    assert daemon.call("room.list")["rooms"] == rooms  # nothing was created
    assert "Traceback" not in daemon.log_path.read_text()


@pytest.mark.parametrize("timeout", [-1, 0, 1e300, 3601])
def test_join_timeout_out_of_range_is_bad_value(daemon: DaemonProcess, timeout: float) -> None:
    code, message = refusal(daemon, "room.join", join_url=JOIN_URL, timeout_s=timeout)
    assert code == "bad_value" and "timeout_s" in message
    assert "Traceback" not in daemon.log_path.read_text()


def test_invite_ttl_under_a_millisecond_is_refused_not_72_hours(daemon: DaemonProcess) -> None:
    code, message = refusal(daemon, "room.create", topic="t", fields=["x"], invite_ttl_s=0.0005)
    assert code == "bad_value" and "invite_ttl_s" in message
    assert refusal(daemon, "room.create", topic="t", fields=["x"], turn_timeout_s=-5)[0] == "bad_value"
    before = time.time_ns() // 1_000_000
    room_id = daemon.call("room.create", topic="t", fields=["x"], invite_ttl_s=0.001)["room_id"]
    with sqlite3.connect(daemon.state_dir / "clawroomd.db") as db:
        (expires,) = db.execute("SELECT expires_ms FROM invites WHERE room_id = ?", (room_id,)).fetchone()
    assert before < expires <= time.time_ns() // 1_000_000 + 1  # one millisecond, as asked


async def test_forged_author_closes_the_link_with_4001(daemon: DaemonProcess) -> None:
    """A submission signed by a key other than the admitted guest's is `wrong_author`, which the mapping
    (core/errors.py) closes with 4001 like any other signature/identity failure (it used to say 4000)."""
    created = await trio.to_thread.run_sync(lambda: daemon.call("room.create", topic="t", fields=["x"]))
    url = JoinURL.parse(created["join_url"])
    guest = Identity.from_seed(os.urandom(32))
    with trio.fail_after(20):
        async with dial_peer(
            url.addrs[0],
            identity=guest,
            static_private=os.urandom(32),
            expected_peer_id=url.host_peer_id,
            invite=Invite(room_id=url.room_id, secret=url.secret),
        ) as conn:
            await conn.send({"t": "sync", "room": url.room_id, "after": -1})
            created_event = open_envelope((await conn.receive())["env"])
            header = Header(
                room=url.room_id,
                seq=1,
                prev=created_event.hash,
                author="guest",
                key=MALLORY.public_key,  # not the key the link proved
                ts=created_event.header.ts,
                sid="forged",
            )
            forged = seal(MALLORY, header, Joined(label="mallory"))
            await conn.send({"t": "submit", "room": url.room_id, "sid": "forged", "env": forged.envelope})
            with pytest.raises(LinkClosed) as closed:
                while True:
                    await conn.receive()
    assert closed.value.close_code == CLOSE_BAD_SIGNATURE and closed.value.error_code == "wrong_author"
    status = await trio.to_thread.run_sync(lambda: daemon.call("room.status", room_id=url.room_id))
    assert status["seq"] == 0  # nothing appended
