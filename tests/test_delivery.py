"""Delivery of a closed room's result to its owner (`deliver_command`, clawroomd.daemon.delivery) with
real daemons and a real hook process: it gets summary.md on stdin and the result's path in its
environment; a failing hook is retried and the state shows it; a restart between the close and the
delivery delivers then; `room.result` with `wait_s` blocks until the result files exist."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.daemon.errors import ApiError
from clawroomd.testing.inprocess import call, open_daemon, open_room, until

# Fails while FAIL_FLAG exists (once, if ONCE is set: it removes the flag), else appends what it got to OUT.
HOOK = """
import json, os, sys
flag, out = sys.argv[1], sys.argv[2]
if os.path.exists(flag):
    if len(sys.argv) > 3:
        os.unlink(flag)
    print("mail server down", file=sys.stderr)
    sys.exit(3)
with open(out, "a") as f:
    f.write(json.dumps({"stdin": sys.stdin.read(), "result": os.environ["CLAWROOM_RESULT"],
                        "attempt": os.environ["CLAWROOM_DELIVERY_ATTEMPT"]}) + "\\n")
"""


def hook(tmp_path: Path, *, once: bool) -> tuple[list[str], Path, Path]:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    flag, out = tmp_path / "fail", tmp_path / "delivered.jsonl"
    flag.touch()
    return [sys.executable, str(script), str(flag), str(out), *(["once"] if once else [])], flag, out


def deliveries(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


async def test_a_failing_hook_is_retried_and_then_gets_the_summary_and_the_result_path(tmp_path: Path) -> None:
    argv, _, out = hook(tmp_path, once=True)
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, deliver_command=argv)
        await call(host, "room.cancel", room_id=rid, reason="no budget")
        await until(lambda: (host.delivery.state(rid) or {}).get("status") == "delivered")  # after the hook exits
        result = await call(host, "room.result", room_id=rid)
        assert result["delivery"]["status"] == "delivered" and result["delivery"]["attempts"] == 2
        (got,) = deliveries(out)
        folder = host.store.room_dir(rid)
        assert got["attempt"] == "2" and got["result"] == str(folder / "final_result.json")
        assert got["stdin"] == (folder / "summary.md").read_text() and "cancelled" in got["stdin"]
        assert result["files"]["final_result"] == got["result"]
        assert (await call(guest, "room.result", room_id=rid))["delivery"] is None  # the guest set no hook


async def test_a_restart_between_the_close_and_the_delivery_delivers_once_after_it(tmp_path: Path) -> None:
    argv, flag, out = hook(tmp_path, once=False)
    host_id = Identity.from_seed(os.urandom(32))
    async with open_daemon(tmp_path / "host", identity=host_id) as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest, deliver_command=argv)
        await call(host, "room.cancel", room_id=rid)
        await until(lambda: (host.delivery.state(rid) or {}).get("attempts", 0) >= 1)
        assert host.delivery.state(rid)["status"] == "pending"  # type: ignore[index]
        assert "mail server down" in host.delivery.state(rid)["last_error"]  # type: ignore[index]
    flag.unlink()  # the mail server is back while the daemon is down
    async with open_daemon(tmp_path / "host", identity=host_id) as host:
        await until(lambda: (host.delivery.state(rid) or {}).get("status") == "delivered")
        assert len(deliveries(out)) == 1
    async with open_daemon(tmp_path / "host", identity=host_id) as host:  # delivered: not again
        await trio.sleep(0.5)
        assert len(deliveries(out)) == 1


async def test_result_wait_blocks_until_the_result_is_written(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host, open_daemon(tmp_path / "guest") as guest:
        rid = await open_room(host, guest)
        with pytest.raises(ApiError) as err:
            await call(host, "room.result", room_id=rid, wait_s=0.2)
        assert err.value.code == "not_ready"
        got: list[dict[str, Any]] = []

        async def waiter() -> None:
            got.append(await call(guest, "room.result", room_id=rid, wait_s=30))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.3)
            assert got == []
            await call(host, "room.cancel", room_id=rid)
        assert got[0]["status"] == "cancelled" and Path(got[0]["files"]["final_result"]).exists()


async def test_a_bad_deliver_command_is_refused(tmp_path: Path) -> None:
    async with open_daemon(tmp_path / "host") as host:
        for bad in ([], [""], "mail me"):
            with pytest.raises(ApiError) as err:
                await call(host, "room.create", topic="t", fields=["price"], deliver_command=bad)
            assert err.value.code == "invalid_params"
        assert len(host.rooms) == 0


def test_the_cli_passes_deliver_and_wait() -> None:
    from clawroomd.cli.parser import parse

    cfg = parse(["create", "--topic", "t", "--field", "price", "--deliver", "mail-me --to alice"])
    assert cfg.deliver == "mail-me --to alice"
    cfg = parse(["result", "--room", "cr_x", "--wait", "--timeout", "5"])
    assert cfg.wait and cfg.wait_timeout == 5.0


def test_a_kill_9_between_the_close_and_the_delivery_delivers_exactly_once(tmp_path: Path) -> None:
    """Real processes: the hook fails on its first run, the host is killed (SIGKILL) while the retry
    waits, and the restarted daemon delivers; one more restart delivers nothing again."""
    from clawroomd.testing import DaemonProcess, wait_for

    argv, flag, out = hook(tmp_path, once=True)
    host = DaemonProcess(tmp_path / "host", name="host", tuning={"keepalive_interval": 0.5, "dead_after": 2.0})
    guest = DaemonProcess(tmp_path / "guest", name="guest", tuning={"max_backoff": 0.5})
    host.start()
    guest.start()
    try:
        created = host.call("room.create", topic="t", fields=["price"], deliver_command=argv)
        rid = created["room_id"]
        guest.call("room.join", join_url=created["join_url"])
        host.call("room.cancel", room_id=rid, reason="no budget")
        wait_for("the first, failing run of the hook", lambda: not flag.exists())
        host.kill()
        assert deliveries(out) == []
        host.start()
        wait_for("the delivery after the restart", lambda: deliveries(out), timeout=20)
        wait_for(
            "the delivered state",
            lambda: (host.call("room.result", room_id=rid)["delivery"] or {}).get("status") == "delivered",
        )
        host.stop()
        host.start()
        host.call("room.result", room_id=rid, wait_s=5)
        assert len(deliveries(out)) == 1
    finally:
        guest.stop()
        host.stop()


async def test_the_configs_deliver_and_notify_hooks_serve_rooms_that_name_none(tmp_path: Path) -> None:
    argv, flag, out = hook(tmp_path, once=True)
    flag.unlink()
    async with open_daemon(tmp_path / "host", deliver=tuple(argv), notify=("true",)) as host, open_daemon(
        tmp_path / "guest"
    ) as guest:
        rid = await open_room(host, guest)
        assert host.rooms[rid].meta["deliver_command"] == argv and host.rooms[rid].meta["notify"] == ["true"]
        own = await open_room(host, guest, deliver_command=["false"])
        assert host.rooms[own].meta["deliver_command"] == ["false"]  # the room's own wins
        await call(host, "room.cancel", room_id=rid, reason="done")
        await until(lambda: len(deliveries(out)) == 1)


def test_the_config_file_names_the_hooks(tmp_path: Path) -> None:
    from clawroomd.daemon.config import ConfigError, load_config

    conf = tmp_path / "c.toml"
    conf.write_text('notify = "notify-send \'clawroom question\'"\ndeliver = ["mail", "-s", "result", "me"]\n')
    config = load_config(["--config", str(conf), "--state-dir", str(tmp_path / "s")], env={})
    assert config.notify == ("notify-send", "clawroom question")
    assert config.deliver == ("mail", "-s", "result", "me")
    for bad in ('deliver = ""', "deliver = 5", 'notify = "unclosed \'quote"'):
        conf.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=bad.split()[0]):
            load_config(["--config", str(conf), "--state-dir", str(tmp_path / "s")], env={})
