"""The dialer does not hang when a peer drops TCP in the middle of the WebSocket upgrade."""

from __future__ import annotations

import os
from functools import partial

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.link import DialFailed, dial_peer


async def test_a_peer_that_hangs_up_during_the_upgrade_fails_the_dial_at_once() -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(100)  # the HTTP upgrade request arrives; drop the connection unanswered
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        ident = Identity.from_seed(os.urandom(32))
        with (
            trio.fail_after(3),
            pytest.raises(DialFailed, match="during the WebSocket upgrade"),
        ):  # dial timeout is 10 s
            async with dial_peer(
                ("127.0.0.1", port),
                identity=ident,
                static_private=os.urandom(32),
                expected_peer_id=ident.peer_id,
                timeout=10,
            ):
                pass
        nursery.cancel_scope.cancel()
