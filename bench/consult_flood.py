"""A hostile guest floods a real host daemon with consult_started / consult_ended pairs (issue 7, item 4).

Run: python bench/consult_flood.py [--max-turns 1000]
The guest is a script on the real link (its own key, the real invite), not a daemon: it signs consultations
until the host refuses them, sending one past every refusal its own core gave, and moves a turn only when it
must; the host's owner answers every host turn through the local API. Prints what the host accepted and
refused, the size of its state folder (database, WAL, transcript) and its RSS before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from clawroomd.core.envelope import open_envelope, seal
from clawroomd.core.events import Body, ConsultEnded, ConsultStarted, Header, Joined, Message
from clawroomd.core.identity import Identity
from clawroomd.core.joinurl import JoinURL
from clawroomd.core.room import GuestRoom
from clawroomd.daemon.clock import now_ms
from clawroomd.link import PeerConnection, dial_peer
from clawroomd.testing import DaemonProcess


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Flooder:
    def __init__(self, conn: PeerConnection, room: GuestRoom, me: Identity) -> None:
        self.conn, self.room, self.me = conn, room, me
        self.n = 0
        self.accepted = 0
        self.refused: dict[str, int] = {}

    async def submit(self, body: Body) -> bool:
        """Sign `body` on top of our head whatever our own core thinks of it; True if the host appended it."""
        self.n += 1
        st, sid = self.room.state, f"f{self.n}"
        header = Header(room=st.room_id, seq=st.seq + 1, prev=st.head, author="guest", key=self.me.public_key,
                        ts=now_ms(), sid=sid)  # fmt: skip
        env = seal(self.me, header, body).envelope
        await self.conn.send({"t": "submit", "room": st.room_id, "sid": sid, "env": env})
        while True:
            frame = await self.conn.receive()
            if frame["t"] == "reject":
                self.refused[frame["code"]] = self.refused.get(frame["code"], 0) + 1
                return False
            ev = self.room.receive(frame["env"], now_ms=now_ms()) if frame["t"] == "event" else None
            if ev is not None and ev.header.sid == sid:
                self.accepted += 1
                return True

    async def wait_for_our_turn(self) -> None:
        while self.room.state.turn != "guest" and self.room.state.phase != "closed":
            frame = await self.conn.receive()
            if frame["t"] == "event":
                self.room.receive(frame["env"], now_ms=now_ms())


async def flood(host: DaemonProcess, url: JoinURL) -> dict[str, Any]:
    me, static = Identity.from_seed(os.urandom(32)), os.urandom(32)
    options: dict[str, Any] = {"identity": me, "static_private": static, "expected_peer_id": url.host_peer_id}
    async with dial_peer(url.addrs[0], invite=url.invite, **options):
        pass  # the invite is spent: the room is bound to our key
    async with dial_peer(url.addrs[0], **options) as conn:
        await conn.send({"t": "sync", "room": url.room_id, "after": -1})
        first = await conn.receive()
        room = GuestRoom(me, room_id=url.room_id, host_key=open_envelope(first["env"]).header.key)
        room.receive(first["env"], now_ms=now_ms())
        f = Flooder(conn, room, me)
        await f.submit(Joined(label="flooder"))
        while room.state.phase != "closed":
            if await f.submit(ConsultStarted()):
                await f.submit(ConsultEnded())
                continue
            if room.state.turn == "guest":  # refused: spend a turn to get a fresh allowance
                await f.submit(Message(text="x"))
            elif room.state.turn == "host":
                await trio.to_thread.run_sync(lambda: host.call("room.send", room_id=url.room_id, text="next"))
                await f.wait_for_our_turn()
            else:
                break
    return {"events": room.state.seq + 1, "accepted": f.accepted, "refused": f.refused}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-turns", type=int, default=1000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clawroom-flood-"))
    host = DaemonProcess(root / "host", name="host", log_level="warning").start()
    try:
        assert host.proc is not None
        rss0 = rss_mb(host.proc.pid)
        created = host.call("room.create", topic="flood", fields=["price"], max_turns=args.max_turns, first="guest")
        t0 = time.monotonic()
        result = trio.run(flood, host, JoinURL.parse(created["join_url"]))
        took = time.monotonic() - t0
        time.sleep(1.0)  # the deferred WAL checkpoint
        files = {p.name: p.stat().st_size for p in host.state_dir.rglob("*") if p.is_file()}
        total = sum(files.values())
        print(f"max_turns {args.max_turns}: {result} in {took:.1f} s")
        big = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in files.items() if size > 100_000)
        print(f"state folder {total / 1e6:.2f} MB ({big}); host RSS {rss0:.0f} -> {rss_mb(host.proc.pid):.0f} MB")
    finally:
        host.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
