"""LAN discovery and joining by room id, between two real daemons in two network namespaces joined by a
veth pair that the module creates and removes (also when a test fails). mDNS never touches the machine's
own interfaces: each daemon is pinned to the namespace's `lan0` (`--lan-interface`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawroomd.testing import DaemonProcess, wait_for
from tests.lan_netns import IFACE, veth_pair, why_not

pytestmark = pytest.mark.slow
FAST = {"keepalive_interval": 0.5, "dead_after": 3.0, "max_backoff": 0.5, "send_timeout": 5.0}
FIELDS = ["amount_format", "hash_algorithm"]
PORT = 7643  # each namespace has its own ports


def lan_daemon(folder: Path, ns: str, name: str, **tuning: Any) -> DaemonProcess:
    return DaemonProcess(
        folder, name=name, port=PORT, netns=ns, listen_host="0.0.0.0", tuning={**FAST, **tuning},
        args=["--lan", "--lan-interface", IFACE, "--lan-name", name],
    )  # fmt: skip


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if (reason := why_not()) is not None:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("lan")
    with veth_pair("l") as ((ns_a, addr_a), (ns_b, addr_b)):
        alice = lan_daemon(tmp / "alice", ns_a, "alice", lan_stale_after=1.0)
        bob = lan_daemon(tmp / "bob", ns_b, "bob", lan_stale_after=1.0)
        try:
            for d in (alice, bob):
                d.start()
            yield {"alice": alice, "bob": bob, "ns": (ns_a, ns_b), "addr": (addr_a, addr_b), "tmp": tmp}
        finally:
            for d in (alice, bob):
                d.stop()


def cli(d: DaemonProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(d.socket), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if check:
        assert run.returncode == 0, f"clawroom {' '.join(args)} -> {run.returncode}: {run.stderr}"
    return run


def peers(d: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {p["peer_id"]: p for p in json.loads(cli(d, "peers", "--json").stdout)["peers"]}


def peer_id(d: DaemonProcess) -> str:
    return str(d.call("daemon.info")["peer_id"])


def found(a: DaemonProcess, b: DaemonProcess) -> dict[str, Any]:
    pid = peer_id(b)
    return wait_for(f"{a.name} finds {b.name}", lambda: (p := peers(a).get(pid)) and p["lan"] == "up" and p, 20)


def create(d: DaemonProcess, *extra: str) -> dict[str, Any]:
    args = ["create", "--topic", "Q2 API contract", "--json", *(a for f in FIELDS for a in ("--field", f)), *extra]
    return dict(json.loads(cli(d, *args).stdout))


def start_join(guest: DaemonProcess, room_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clawroomd.cli.main", "--socket", str(guest.socket), "join", "--room", room_id,
         "--label", "bob-agent", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def request_at(host: DaemonProcess, room_id: str) -> dict[str, Any]:
    def waiting() -> dict[str, Any] | None:
        reqs = json.loads(cli(host, "inbox", "--json").stdout)["join_requests"]
        return next((r for r in reqs if r["room_id"] == room_id), None)

    return dict(wait_for(f"the join request at {host.name}", waiting, 20))


def turn(d: DaemonProcess, room_id: str) -> None:
    wait_for(f"{d.name}'s turn", lambda: d.call("room.status", room_id=room_id)["your_turn"])


def agree(host: DaemonProcess, guest: DaemonProcess, room_id: str) -> None:
    turn(host, room_id)
    offer = {"amount_format": "minor units", "hash_algorithm": "SHA-256"}
    host.call("room.send", room_id=room_id, text="offer", propose=offer)
    turn(guest, room_id)
    guest.call("room.send", room_id=room_id, text="ok", accept=FIELDS)
    turn(host, room_id)
    host.call("room.close", room_id=room_id)
    turn(guest, room_id)
    guest.call("room.close", room_id=room_id)
    for d in (host, guest):
        wait_for(f"{d.name}'s result", lambda d=d: d.call("room.status", room_id=room_id)["phase"] == "closed")
        assert d.call("room.result", room_id=room_id)["status"] == "agreement_reached"


def test_daemons_find_each_other(lan: dict[str, Any]) -> None:
    alice, bob = lan["alice"], lan["bob"]
    seen = found(alice, bob)
    assert seen["name"] == "bob" and seen["addrs"] == [f"{lan['addr'][1]}:{PORT}"] and seen["met"] is False
    assert found(bob, alice)["name"] == "alice"
    # Stale after 1 s without news: bob is dialed, proves his identity, and stays up (and so stays found).
    first = seen["last_seen_ms"]
    wait_for("a confirmation by dialing", lambda: peers(alice)[peer_id(bob)]["last_seen_ms"] > first + 500, 15)
    assert peers(alice)[peer_id(bob)]["lan"] == "up"
    text = cli(alice, "peers").stdout
    assert "bob" in text and "not met" in text and "on (lan0" in text


def test_join_by_room_id_with_approval_and_sas(lan: dict[str, Any]) -> None:
    alice, bob = lan["alice"], lan["bob"]
    found(bob, alice)
    hook = lan["tmp"] / "notified.json"
    created = create(alice, "--lan-join", "--notify", f"sh -c 'cat > {hook}'")
    room_id = created["room_id"]
    join = start_join(bob, room_id)
    try:
        assert join.stdout is not None
        pending = json.loads(join.stdout.readline())
        assert pending["state"] == "pending" and pending["host_peer_id"] == peer_id(alice)
        request = request_at(alice, room_id)
        assert request["sas"] == pending["sas"] and len(pending["sas"]) == 6  # the owners read these aloud
        assert request["peer_id"] == peer_id(bob) and request["name"] == "bob"
        note = wait_for("the notify hook", lambda: hook.exists() and hook.read_text() and json.loads(hook.read_text()))
        assert note["type"] == "join_request" and note["sas"] == pending["sas"] and note["room_id"] == room_id
        outgoing = json.loads(cli(bob, "inbox", "--json").stdout)["outgoing_requests"]
        assert [(o["room_id"], o["sas"], o["state"]) for o in outgoing] == [(room_id, pending["sas"], "pending")]
        approved = json.loads(cli(alice, "approve", "--room", room_id, "--json").stdout)
        assert approved["answer"] == "approved"
        out, err = join.communicate(timeout=60)
    finally:
        join.kill()
    assert join.returncode == 0, err
    view = json.loads(out)
    assert view["room_id"] == room_id and view["sas"] == pending["sas"] and view["lifecycle"] == "active"
    agree(alice, bob, room_id)
    assert peers(alice)[peer_id(bob)]["met"] and peers(bob)[peer_id(alice)]["met"]
    # Approval was for this room only: bob asking for another lan-join room is a new request.
    other = create(alice, "--lan-join")["room_id"]
    asked = bob.call("room.join", room_id=other, wait=False)
    assert asked["state"] == "pending"
    cli(alice, "deny", "--room", other, "--peer", "bob")


def test_join_url_without_addresses_resolves_on_the_lan(lan: dict[str, Any]) -> None:
    alice, bob = lan["alice"], lan["bob"]
    found(bob, alice)
    url = create(alice)["join_url"]
    assert "at=" not in url  # alice listens on 0.0.0.0: the link names no address
    joined = json.loads(cli(bob, "join", url, "--json").stdout)
    assert joined["lifecycle"] == "active"
    agree(alice, bob, joined["room_id"])


def test_denied_guest_is_refused(lan: dict[str, Any]) -> None:
    alice, bob = lan["alice"], lan["bob"]
    found(bob, alice)
    room_id = create(alice, "--lan-join")["room_id"]
    join = start_join(bob, room_id, "--peer", "alice")
    try:
        request_at(alice, room_id)
        cli(alice, "deny", "--room", room_id, "--peer", peer_id(bob)[:9])
        out, err = join.communicate(timeout=60)
    finally:
        join.kill()
    assert join.returncode == 8 and "denied" in out, (out, err)
    again = cli(bob, "join", "--room", room_id, check=False)  # refused at once, no second request
    assert again.returncode == 8 and "denied" in again.stderr
    assert json.loads(cli(alice, "inbox", "--json").stdout)["join_requests"] == []
    assert alice.call("room.status", room_id=room_id)["lifecycle"] == "invited"


def test_private_room_refuses_like_a_missing_one(lan: dict[str, Any]) -> None:
    alice, bob = lan["alice"], lan["bob"]
    found(bob, alice)
    private = create(alice)["room_id"]  # no --lan-join
    refused = cli(bob, "join", "--room", private, "--peer", "alice", check=False)
    missing = cli(bob, "join", "--room", "cr_00000000deadbeef", "--peer", "alice", check=False)
    assert refused.returncode == missing.returncode == 6
    assert refused.stderr.replace(private, "ID") == missing.stderr.replace("cr_00000000deadbeef", "ID")
    assert json.loads(cli(alice, "inbox", "--json").stdout)["join_requests"] == []


def test_unapproved_request_expires_and_a_killed_peer_goes_stale(lan: dict[str, Any]) -> None:
    """carol (second daemon in bob's namespace) lets requests expire after 2 s; then she is killed with
    SIGKILL (no goodbye on the LAN) and alice finds out by dialing her."""
    alice = lan["alice"]
    carol = DaemonProcess(
        lan["tmp"] / "carol", name="carol", port=PORT + 1, netns=lan["ns"][1], listen_host="0.0.0.0",
        tuning={**FAST, "join_request_ttl": 2.0, "lan_stale_after": 1.0},
        args=["--lan", "--lan-interface", IFACE, "--lan-name", "carol"],
    ).start()  # fmt: skip
    try:
        found(alice, carol)
        room_id = create(carol, "--lan-join")["room_id"]
        expired = cli(alice, "join", "--room", room_id, "--peer", "carol", check=False)
        assert expired.returncode == 8 and "in time" in expired.stderr
        assert carol.call("room.status", room_id=room_id)["lifecycle"] == "invited"  # nobody admitted
        carol_id = peer_id(carol)
        carol.kill()
        wait_for("carol gone", lambda: peers(alice)[carol_id]["lan"] == "gone", 20)
        refused = cli(alice, "join", "--room", room_id, "--peer", "carol", check=False)
        assert refused.returncode == 7 and "is on the LAN now" in refused.stderr  # a gone peer is not asked
    finally:
        carol.stop()


AVAHI_CONF = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces={iface}
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
"""


def _private_bus(folder: Path) -> str:
    """A config for a dbus-daemon of our own: the system bus's policy (so avahi may own its name), on a
    socket in `folder`, as root, without a pid file (there is no system D-Bus here)."""
    conf = Path("/usr/share/dbus-1/system.conf").read_text()
    for old, new in (
        ("<user>messagebus</user>", ""),
        ("<pidfile>/run/dbus/pid</pidfile>", ""),
        ("<standard_system_servicedirs/>", ""),
        ("<includedir>system.d</includedir>", "<includedir>/usr/share/dbus-1/system.d</includedir>"),
    ):
        conf = conf.replace(old, new)
    start, end = conf.index("<listen>"), conf.index("</listen>") + len("</listen>")
    conf = conf[:start] + f"<listen>unix:path={folder / 'bus'}</listen>" + conf[end:]
    (folder / "bus.conf").write_text(conf)
    (folder / "avahi.conf").write_text(AVAHI_CONF.format(iface=IFACE))
    return f"unix:path={folder / 'bus'}"


def test_avahi_browse_sees_our_daemon(lan: dict[str, Any]) -> None:
    """Debian's avahi (an independent mDNS implementation) in bob's namespace finds alice's daemon."""
    missing = [t for t in ("avahi-daemon", "avahi-browse", "dbus-daemon") if shutil.which(t) is None]
    if missing or not Path("/usr/share/dbus-1/system.conf").exists():
        pytest.skip(f"not installed: {', '.join(missing) or 'the D-Bus system config'} (.ci/run installs avahi)")
    folder = lan["tmp"] / "avahi"
    folder.mkdir()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=_private_bus(folder))
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    bus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={folder / 'bus.conf'}"], **quiet)
    avahi = None
    try:
        wait_for("the private D-Bus", lambda: (folder / "bus").exists(), 10)
        avahi = subprocess.Popen(
            ["ip", "netns", "exec", lan["ns"][1], "avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits",
             "-f", str(folder / "avahi.conf")],
            env=env, **quiet,
        )  # fmt: skip
        alice_id = peer_id(lan["alice"])

        def browse() -> str | None:
            run = subprocess.run(
                ["ip", "netns", "exec", lan["ns"][1], "avahi-browse", "-rtp", "_clawroom._tcp"],
                env=env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return next((ln for ln in run.stdout.splitlines() if ln.startswith("=") and alice_id in ln), None)

        line = wait_for("avahi-browse to list alice", browse, 30, poll=0.5)
        fields = line.split(";")
        assert fields[1] == IFACE and fields[7] == lan["addr"][0] and fields[8] == str(PORT)
        assert f'"id={alice_id}"' in line and '"name=alice"' in line and '"v=1"' in line
        assert "cr_" not in line and "topic" not in line  # nothing about rooms
    finally:
        for p in (avahi, bus):
            if p is not None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
