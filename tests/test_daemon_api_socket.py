"""The local API of an in-process daemon over a real Unix socket (`serve_rpc` with the `Daemon` as its
dispatcher, as daemon/service.py wires it) and the real `AsyncClient`: daemon.info, room.create, the
notifications of room.watch in order, and errors with their stable codes."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import clawroomd
from clawroomd.client import ApiError, AsyncClient
from clawroomd.daemon.errors import ERROR_CODES
from clawroomd.daemon.rpc import serve_rpc
from clawroomd.daemon.wiring import Daemon
from clawroomd.testing.inprocess import call, open_daemon, until


@asynccontextmanager
async def api_client(daemon: Daemon, folder: Path) -> AsyncIterator[AsyncClient]:
    """`daemon`'s local API on a socket in `folder`, and a client connected to it."""
    async with trio.open_nursery() as nursery:
        path = await nursery.start(functools.partial(serve_rpc, folder / "d.sock", daemon))
        async with AsyncClient(path) as client:
            yield client
        nursery.cancel_scope.cancel()


async def error(client: AsyncClient, method: str, **params: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        await client.call(method, **params)
    return err.value


async def next_note(client: AsyncClient) -> tuple[str, dict[str, Any]]:
    """The next notification other than room.status (which comes whenever the link or lifecycle moves)."""
    with trio.fail_after(10):
        while True:
            note = await client.notifications().receive()
            if note["method"] != "room.status":
                return note["method"], note["params"]


async def test_info_create_and_watch_over_the_socket(tmp_path: Path) -> None:
    async with (
        open_daemon(tmp_path / "host") as host,
        open_daemon(tmp_path / "guest") as guest,
        api_client(host, tmp_path / "run") as client,
    ):
        info = await client.call("daemon.info")
        assert info["peer_id"] == host.rooms.identity.peer_id and info["listen"] == host.listen
        assert info["version"] == clawroomd.__version__ and info["state_dir"] == str(tmp_path / "host")
        assert (info["rooms"], info["open_rooms"], info["storage"], info["damaged_rooms"]) == (0, 0, "ok", [])

        created = await client.call("room.create", topic="price", fields=["price"], label="h")
        rid = created["room_id"]
        assert created["role"] == "host" and created["lifecycle"] == "invited" and created["seq"] == 0
        assert created["join_url"].startswith(f"clawroom://join/{rid}") and rid in host.rooms
        assert await client.call("room.watch", room_id=rid) == {"room_id": rid, "subscribed": True, "seq": 0}
        method, params = await next_note(client)
        assert method == "room.event" and params["event"]["kind"] == "room_created" and params["room_id"] == rid

        await call(guest, "room.join", join_url=created["join_url"], label="g")
        assert await next_note(client) == (
            "room.event",
            {"room_id": rid, "event": host.rooms[rid].core.log[1].to_json()},
        )
        method, params = await next_note(client)
        assert (method, params["seq"], params["awaiting"], params["phase"]) == ("room.your_turn", 1, ["host"], "active")

        sent = await client.call("room.send", room_id=rid, text="100?", propose={"price": "100"}, expect_seq=1)
        assert sent["event"]["seq"] == 2 and (await next_note(client))[1]["event"]["seq"] == 2
        await until(lambda: guest.rooms[rid].our_turn)
        await call(guest, "room.send", room_id=rid, text="ok", accept=["price"])
        method, params = await next_note(client)
        assert method == "room.event" and params["event"]["author"] == "guest" and params["event"]["seq"] == 3
        method, params = await next_note(client)
        assert (method, params["seq"], params["phase"]) == ("room.your_turn", 3, "active")

        await client.call("room.close", room_id=rid)
        assert (await next_note(client))[1]["event"]["kind"] == "close_proposed"
        await until(lambda: guest.rooms[rid].our_turn)
        await call(guest, "room.close", room_id=rid)
        kinds = [(await next_note(client))[1]["event"]["kind"] for _ in range(2)]
        assert kinds == ["close_accepted", "room_closed"]
        method, params = await next_note(client)
        assert method == "room.closed" and params["result"]["status"] == "agreement_reached"
        assert params["result"]["outcomes"] == {"price": "100"} and params["result"]["events"] == 7
        result = await client.call("room.result", room_id=rid)
        local = ("room_id", "role", "topic", "files", "delivery")  # room.result's own keys, beside the result
        assert {k: v for k, v in result.items() if k not in local} == params["result"]
        info = await client.call("daemon.info")
        assert (info["rooms"], info["open_rooms"]) == (1, 0)


async def test_errors_carry_their_stable_codes_and_leave_the_connection_usable(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "d") as d, api_client(d, tmp_path / "run") as client:
        cases: list[tuple[str, dict[str, Any], str, str]] = [
            ("room.create", {"topic": "t"}, "invalid_params", "'fields'"),
            ("room.create", {"topic": "t", "fields": "price"}, "invalid_params", "'fields' has the wrong type"),
            ("room.create", {"topic": "t", "fields": ["price"], "max_turns": True}, "invalid_params", "max_turns"),
            ("room.create", {"topic": "t", "fields": ["price"], "deadline_s": -1}, "bad_value", "deadline_s"),
            ("room.status", {"room_id": 7}, "invalid_params", "'room_id' has the wrong type"),
            ("room.status", {}, "invalid_params", "missing parameter 'room_id'"),
            ("room.status", {"room_id": "cr_00000000000000ff"}, "unknown_room", "cr_00000000000000ff"),
            ("room.watch", {"room_id": "cr_00000000000000ff"}, "unknown_room", "no room"),
            ("room.send", {"room_id": "cr_00000000000000ff", "text": "x"}, "unknown_room", "no room"),
            ("room.join", {"join_url": "https://example.org/"}, "bad_join_url", ""),
            ("room.nope", {}, "method_not_found", "room.nope"),
        ]
        for method, params, code, said in cases:
            err = await error(client, method, **params)
            assert (err.code, err.rpc_code) == (code, ERROR_CODES[code]), (method, params, err)
            assert said in err.message, (method, params, err.message)
        assert (await error(client, "room.create", topic="t", fields=["price"], max_turns=True)).rpc_code == -32602
        rid = (await client.call("room.create", topic="t", fields=["price"]))["room_id"]
        err = await error(client, "room.result", room_id=rid)
        assert (err.code, err.rpc_code, err.data) == ("not_ready", 1010, {"lifecycle": "invited"})
        assert [r["room_id"] for r in (await client.call("room.list"))["rooms"]] == [rid]  # nothing else was made
