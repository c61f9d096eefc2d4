"""A write that fails (disk full) leaves the room exactly as the database has it, and nothing unsaved is
sent to the peer or shown to anyone; the daemon recovers by itself once writing works again.

Two real supervisors (host and guest) run in this process, each with a real Store (SQLite on disk), and
talk over a real loopback peer link. The failure is injected with SQLite's own limit, not a mock:
``PRAGMA max_page_count`` set on the Store's connection (its private ``_db``) to the pages it already has,
so that the next event needing new pages fails with SQLITE_FULL ("database or disk is full"), exactly
what a full disk gives. Raising the limit again is "space returns". The real-disk version (a small tmpfs,
two daemon processes) is in test_disk_full.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.daemon.config import DaemonConfig
from clawroomd.daemon.errors import ApiError
from clawroomd.daemon.store import Store
from clawroomd.daemon.tuning import Tuning
from clawroomd.daemon.wiring import Daemon

BIG = "€" * 8000  # 24 KB of text: the event needs new database pages, so a full database refuses it
FIELDS = ["price"]
TUNING = {"max_backoff": 0.3, "send_timeout": 3.0, "keepalive_interval": 0.5, "dead_after": 3.0}


class Side:
    def __init__(self, sup: Daemon) -> None:
        self.sup = sup
        self.store = sup.store

    async def call(self, method: str, **params: Any) -> Any:
        return await self.sup.handle(method, params, None)  # type: ignore[arg-type]

    def fill(self) -> None:
        """From now on, a write that needs a new page fails with SQLITE_FULL."""
        pages = self.store._db.execute("PRAGMA page_count").fetchone()[0]
        assert self.store._db.execute("PRAGMA max_page_count = ?".replace("?", str(pages))).fetchone()[0] == pages

    def free(self) -> None:
        self.store._db.execute("PRAGMA max_page_count = 1073741823")

    def db_head(self, room_id: str) -> tuple[int, str]:
        rows = self.store.events(room_id)
        return rows[-1].seq, rows[-1].hash.hex()

    def core_head(self, room_id: str) -> tuple[int, str]:
        st = self.sup.rooms[room_id].state
        return st.seq, st.head.hex()


async def start_side(tmp: Path, name: str, nursery: trio.Nursery) -> Side:
    state = tmp / name
    config = DaemonConfig(
        state_dir=state, socket_path=tmp / f"{name}.sock", listen_host="127.0.0.1", listen_port=0,
        tuning=Tuning.from_table(TUNING),
    )  # fmt: skip
    store = Store(state)
    sup = Daemon(
        config=config, store=store, identity=Identity.from_seed(os.urandom(32)), static_key=os.urandom(32),
        nursery=nursery,
    )  # fmt: skip
    await nursery.start(sup.start)
    return Side(sup)


@pytest.fixture
async def sides(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    async with trio.open_nursery() as nursery:
        host = await start_side(tmp_path, "host", nursery)
        guest = await start_side(tmp_path, "guest", nursery)
        yield host, guest
        nursery.cancel_scope.cancel()
    host.store.close()
    guest.store.close()


async def until(what: str, cond: Callable[[], Any], timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def open_room(host: Side, guest: Side) -> str:
    created = await host.call("room.create", topic="t", fields=FIELDS, advertise=host.sup.listen, max_turns=20)
    await guest.call("room.join", join_url=created["join_url"], label="g")
    room_id: str = created["room_id"]
    await until("the host sees the join", lambda: host.sup.rooms[room_id].state.phase == "active")
    return room_id


async def test_host_write_fails_core_rolled_back_nothing_sent_then_recovers(sides: tuple[Side, Side]) -> None:
    host, guest = sides
    room_id = await open_room(host, guest)
    live = host.sup.rooms[room_id]
    before = host.core_head(room_id)
    assert before == host.db_head(room_id) == guest.core_head(room_id)
    changed = live.changed
    host.fill()
    with pytest.raises(ApiError) as err:
        await host.call("room.send", room_id=room_id, text=BIG)
    assert err.value.code == "storage_failed" and "disk full" in err.value.message
    # memory is the database, nobody was woken, and the guest got nothing
    assert host.core_head(room_id) == host.db_head(room_id) == before
    assert len(live.core.log) == before[0] + 1 and not changed.is_set()
    feed = host.sup.host_side.feeds.get(room_id)
    assert feed is not None and feed.sent == before[0]
    info = await host.call("daemon.info")
    assert info["storage"] == "failing: disk full"
    await trio.sleep(0.3)
    assert guest.core_head(room_id) == guest.db_head(room_id) == before
    # space returns: the same call goes through, with no restart, and the guest gets it
    host.free()
    sent = await host.call("room.send", room_id=room_id, text=BIG)
    assert sent["event"]["seq"] == before[0] + 1
    assert (await host.call("daemon.info"))["storage"] == "ok"
    await until("the guest has it", lambda: guest.core_head(room_id) == host.core_head(room_id))
    assert guest.db_head(room_id) == host.db_head(room_id) == host.core_head(room_id)


async def test_a_guest_submission_the_host_cannot_save_is_resent_after_recovery(sides: tuple[Side, Side]) -> None:
    host, guest = sides
    room_id = await open_room(host, guest)
    await host.call("room.send", room_id=room_id, text="your turn")
    await until("the guest's turn", lambda: guest.sup.rooms[room_id].our_turn)
    before = host.core_head(room_id)
    host.fill()
    queued = await guest.call("room.send", room_id=room_id, text=BIG, propose={"price": "10"})
    # the host rolled back and dropped the link instead of acknowledging; the move waits in the outbox
    assert queued.get("queued") is True
    assert host.core_head(room_id) == host.db_head(room_id) == before
    assert guest.core_head(room_id) == guest.db_head(room_id) == before
    assert [r.sid for r in guest.store.outbox(room_id)] == [queued["sid"]]
    host.free()
    await until("the move lands on both sides", lambda: host.core_head(room_id)[0] == before[0] + 1
                and guest.core_head(room_id) == host.core_head(room_id), timeout=20)  # fmt: skip
    assert host.db_head(room_id) == guest.db_head(room_id) == host.core_head(room_id)
    assert guest.store.outbox(room_id) == []
    assert host.sup.rooms[room_id].state.proposals["price"]["guest"] == "10"


async def test_guest_that_cannot_save_a_host_event_rolls_back_and_resyncs(sides: tuple[Side, Side]) -> None:
    host, guest = sides
    room_id = await open_room(host, guest)
    glive = guest.sup.rooms[room_id]
    before = guest.core_head(room_id)
    guest.fill()
    await host.call("room.send", room_id=room_id, text=BIG)  # committed by the host, refused by the guest's disk
    await until("the guest drops the link", lambda: not glive.link_up)
    assert guest.core_head(room_id) == guest.db_head(room_id) == before
    assert not glive.our_turn  # the guest's agent is not told it is its turn on an event it does not hold
    assert (await guest.call("daemon.info"))["storage"] == "failing: disk full"
    await trio.sleep(1.0)  # it backs off rather than redialling in a loop; still nothing unsaved
    assert guest.core_head(room_id) == guest.db_head(room_id) == before
    guest.free()
    await until("the guest catches up", lambda: guest.core_head(room_id) == host.core_head(room_id), timeout=20)
    assert guest.db_head(room_id) == guest.core_head(room_id)
    assert (await guest.call("daemon.info"))["storage"] == "ok"
    sent = await guest.call("room.send", room_id=room_id, text="ok", propose={"price": "10"})
    assert sent["event"]["seq"] == host.core_head(room_id)[0]
    assert host.store.room_dir(room_id).joinpath("transcript.jsonl").read_bytes() == guest.store.room_dir(
        room_id
    ).joinpath("transcript.jsonl").read_bytes()


async def test_a_guest_move_its_own_disk_cannot_save_is_refused_and_not_sent(sides: tuple[Side, Side]) -> None:
    host, guest = sides
    room_id = await open_room(host, guest)
    await host.call("room.send", room_id=room_id, text="your turn")
    await until("the guest's turn", lambda: guest.sup.rooms[room_id].our_turn)
    before = host.core_head(room_id)
    guest.fill()
    with pytest.raises(ApiError) as err:  # the outbox cannot hold it, so it is not sent at all
        await guest.call("room.send", room_id=room_id, text=BIG)
    assert err.value.code == "storage_failed"
    await trio.sleep(0.3)
    assert host.core_head(room_id) == host.db_head(room_id) == before == guest.core_head(room_id)
    assert guest.store.outbox(room_id) == []
    guest.free()
    sent = await guest.call("room.send", room_id=room_id, text=BIG)
    assert sent["event"]["seq"] == before[0] + 1
