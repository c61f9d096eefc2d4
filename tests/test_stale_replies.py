"""Replies bind to what they saw (DESIGN §4, SPEC §15.7 `expect_seq`): two real daemons in one trio
run, on loopback with real links, SQLite stores and agent processes; the API is called in-process."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.core.events import ConsultStarted
from clawroomd.daemon.clock import mono_ms, now_ms
from clawroomd.daemon.errors import ApiError
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.inprocess import call, open_daemon

AGENT = Path(__file__).with_name("stale_agent.py")
TUNING = {"keepalive_interval": 0.5, "dead_after": 2.0, "max_backoff": 0.5, "send_timeout": 5.0}


async def refused(sup: Daemon, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await call(sup, method, **params)
    return err.value


async def until(what: str, cond: Any, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


@asynccontextmanager
async def room(tmp_path: Path, *, agent: list[str] | None = None) -> AsyncIterator[tuple[Daemon, Daemon, str]]:
    """A host and a guest daemon sharing one room with the field `price`; the host moves first."""
    async with (
        open_daemon(tmp_path / "host", tuning=TUNING) as host,
        open_daemon(tmp_path / "guest", tuning=TUNING) as guest,
    ):
        created = await call(host, "room.create", topic="price", fields=["price"], max_turns=10)
        extra = {"agent_command": agent} if agent else {}
        await call(guest, "room.join", join_url=created["join_url"], **extra)
        room_id = created["room_id"]
        await until("the guest's joined at the host", lambda: host.rooms[room_id].state.seq == 1)
        yield host, guest, room_id


def snapshot(sup: Daemon, room_id: str) -> tuple[Any, ...]:
    live = sup.rooms[room_id]
    return live.state, len(live.core.log), [r.sid for r in sup.store.outbox(room_id)]


async def host_consults(host: Daemon, room_id: str, *, tell_guest: bool = True) -> None:
    """The host appends an event that uses no turn (its agent asks its owner): the room moves on while
    it is still the guest's turn. With tell_guest=False the guest does not hear of it yet."""
    live = host.rooms[room_id]
    async with live.lock:
        sub = live.host.send(ConsultStarted(), sid="consult-1", now_ms=now_ms(), mono_ms=mono_ms())
        host.rooms.commit(live, sub.events, wake=False)
    if tell_guest:
        await host.host_side.forward(live)


@contextmanager
def on_host_log(text: str, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` when the host daemon logs `text` (the moment it refuses a submission, here)."""

    class Hook(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                action()

    logger, hook = logging.getLogger("clawroomd.host"), Hook()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(hook)
    try:
        yield
    finally:
        logger.removeHandler(hook)
        logger.setLevel(level)


async def test_a_move_bound_to_an_older_seq_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with room(tmp_path) as (host, guest, rid):
        before = snapshot(host, rid), snapshot(guest, rid)
        err = await refused(host, "room.send", room_id=rid, text="100", propose={"price": "100"}, expect_seq=0)
        assert err.code == "stale_state" and err.data == {"expect_seq": 0, "seq": 1}
        assert "from seq 0 to 1" in err.message
        assert (snapshot(host, rid), snapshot(guest, rid)) == before

        sent = await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"}, expect_seq=1)
        assert sent["event"]["seq"] == 2
        await until("the guest sees seq 2", lambda: guest.rooms[rid].state.seq == 2)

        before = snapshot(host, rid), snapshot(guest, rid)
        err = await refused(guest, "room.send", room_id=rid, text="ok", accept=["price"], expect_seq=1)
        assert err.code == "stale_state" and err.data == {"expect_seq": 1, "seq": 2}
        assert (await refused(guest, "room.close", room_id=rid, expect_seq=1)).code == "stale_state"
        assert (await refused(guest, "room.send", room_id=rid, text="x", expect_seq=3)).code == "bad_value"
        for bad in (-2, "2", True, 2.0):
            assert (await refused(guest, "room.send", room_id=rid, text="x", expect_seq=bad)).code == "invalid_params"
        await trio.sleep(0.2)  # anything sent would have reached the host by now
        assert (snapshot(host, rid), snapshot(guest, rid)) == before

        sent = await call(guest, "room.send", room_id=rid, text="ok", accept=["price"], expect_seq=2)
        assert sent["event"]["seq"] == 3 and sent["event"]["body"]["moves"][0]["value"] == "100"


async def test_accept_binds_the_value_seen_not_the_one_standing_when_the_reply_arrives(tmp_path: Path) -> None:
    async with room(tmp_path) as (host, guest, rid):
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"}, expect_seq=1)
        await until("the guest sees 100", lambda: guest.rooms[rid].state.seq == 2)
        await call(guest, "room.send", room_id=rid, text="yes", accept=["price"], expect_seq=2)
        await call(host, "room.send", room_id=rid, text="120 now", propose={"price": "120"}, expect_seq=3)
        await until("the guest sees 120", lambda: guest.rooms[rid].state.seq == 4)
        # a second reply written having seen 100 (seq 2): it must not accept the 120 that stands now
        for params in ({"accept": ["price"]}, {"moves": [{"op": "accept", "field": "price"}]}):
            err = await refused(guest, "room.send", room_id=rid, text="yes", expect_seq=2, **params)
            assert err.code == "stale_state" and err.data == {"expect_seq": 2, "seq": 4}
        await trio.sleep(0.2)
        assert host.rooms[rid].state.seq == 4 and "price" not in host.rooms[rid].state.agreed
        # the host side alike: a host reply bound to the guest's 90 is refused once the guest said 95
        await call(guest, "room.send", room_id=rid, text="90", propose={"price": "90"}, expect_seq=4)
        await until("the host sees 90", lambda: host.rooms[rid].state.seq == 5)
        await call(host, "room.send", room_id=rid, text="hm", expect_seq=5)
        await until("the guest's turn", lambda: guest.rooms[rid].state.seq == 6)
        await call(guest, "room.send", room_id=rid, text="95", propose={"price": "95"}, expect_seq=6)
        await until("the host sees 95", lambda: host.rooms[rid].state.seq == 7)
        err = await refused(host, "room.send", room_id=rid, text="deal", accept=["price"], expect_seq=5)
        assert err.code == "stale_state"
        sent = await call(host, "room.send", room_id=rid, text="deal", accept=["price"], expect_seq=7)
        assert sent["event"]["body"]["moves"][0]["value"] == "95"


@pytest.mark.parametrize("bound", [True, False], ids=["expect_seq", "implicit"])
async def test_a_guest_never_re_signs_a_move_on_a_state_its_author_did_not_see(tmp_path: Path, bound: bool) -> None:
    """The host holds an event the guest has not received when the guest's move arrives: the host
    refuses it as stale (bad_sequence). Re-signing that move on top of the newer event would apply a
    reply to a state its author never saw, so the call fails with stale_state instead."""
    async with room(tmp_path) as (host, guest, rid):
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"}, expect_seq=1)
        await until("the guest sees 100", lambda: guest.rooms[rid].state.seq == 2)
        await host_consults(host, rid, tell_guest=False)
        g = guest.rooms[rid]
        refusal = trio.Event()

        async def deliver_once_refused() -> None:  # the event reaches the guest just after the refusal
            await refusal.wait()
            await host.host_side.forward(host.rooms[rid])

        with on_host_log("refused a guest submission", refusal.set):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(deliver_once_refused)
                err = await refused(guest, "room.send", room_id=rid, text="ok", accept=["price"],
                                    **({"expect_seq": 2} if bound else {}))  # fmt: skip
        assert err.code == "stale_state" and err.data["expect_seq"] == 2
        await trio.sleep(0.2)
        assert host.rooms[rid].state.seq == 3 and [e.kind for e in host.rooms[rid].core.log][-1] == "consult_started"
        assert guest.store.outbox(rid) == [] and g.state.seq == 3
        # decided again on what it now sees, the move goes through
        sent = await call(guest, "room.send", room_id=rid, text="ok", accept=["price"], expect_seq=3)
        assert sent["event"]["seq"] == 4


async def test_a_stale_agent_reply_is_dropped_and_the_agent_runs_again_on_the_new_state(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "hold-2").touch()
    runs = gates / "agent.log"
    async with room(tmp_path, agent=[sys.executable, str(AGENT), str(gates)]) as (host, guest, rid):
        await call(host, "room.send", room_id=rid, text="100", propose={"price": "100"}, expect_seq=1)
        await until("the agent's view of seq 2", runs.exists)
        await host_consults(host, rid)  # the room moves on (seq 3) while the agent thinks about seq 2
        await until("the guest sees seq 3", lambda: guest.rooms[rid].state.seq == 3)
        (gates / "go-2").touch()
        await until("the guest's message", lambda: host.rooms[rid].state.seq == 4)
        await trio.sleep(0.3)  # a second, stale message would land about now
        log = host.rooms[rid].core.log
        assert [json.loads(line) for line in runs.read_text().splitlines()] == [
            {"seq": 2, "saw": "100"},
            {"seq": 3, "saw": "100"},
        ]
        assert len(log) == 5 and log[4].header.author == "guest"
        assert log[4].to_json()["body"]["text"] == "saw 100 at seq 3"
