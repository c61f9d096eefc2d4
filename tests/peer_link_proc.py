"""A minimal host or guest daemon for the two-process peer-link test (run as a script, prints JSON lines).

python tests/peer_link_proc.py host <identity seed hex> <static hex> <room id> <secret hex>
python tests/peer_link_proc.py guest <identity seed hex> <join url> <marker>
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from functools import partial

import trio

from clawroomd.core.identity import Identity
from clawroomd.core.invites import Invite, check_invite, new_invite
from clawroomd.core.joinurl import JoinURL
from clawroomd.link import PeerConnection, dial_peer, serve_peers


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def host(seed: str, static: str, room: str, secret: str) -> None:
    identity = Identity.from_seed(bytes.fromhex(seed))
    records = {room: new_invite(room, bytes.fromhex(secret), int(time.time() * 1000))}
    done = trio.Event()

    async def authorize(peer_key: bytes, invite: Invite | None) -> None:
        assert invite is not None
        check_invite(records[invite.room_id], invite, int(time.time() * 1000))
        records[invite.room_id] = replace(records[invite.room_id], used=True)

    async def handler(conn: PeerConnection) -> None:
        async for message in conn:
            emit(got=message["text"], sas=conn.sas, peer=conn.peer_peer_id)
            await conn.send({"text": "ack " + message["text"]})
        done.set()

    async with trio.open_nursery() as nursery:
        addr = await nursery.start(
            partial(
                serve_peers,
                "127.0.0.1",
                0,
                identity=identity,
                static_private=bytes.fromhex(static),
                authorize=authorize,
                handler=handler,
            )
        )
        emit(port=addr[1], peer_id=identity.peer_id)
        await done.wait()
        nursery.cancel_scope.cancel()


async def guest(seed: str, url: str, marker: str) -> None:
    join = JoinURL.parse(url)
    identity = Identity.from_seed(bytes.fromhex(seed))
    async with dial_peer(
        join.addrs[0],
        identity=identity,
        static_private=os.urandom(32),
        expected_peer_id=join.host_peer_id,
        invite=join.invite,
    ) as conn:
        await conn.send({"text": marker})
        reply = await conn.receive()
        emit(reply=reply["text"], sas=conn.sas, peer=conn.peer_peer_id)


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    trio.run(host if role == "host" else guest, *args)
