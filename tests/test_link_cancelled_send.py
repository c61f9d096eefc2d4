"""A send cancelled part-way must not desynchronise the link. Each send spends a Noise nonce when it
encrypts; a cancel that lands after that (a local client hanging up while its move is forwarded, a guest
re-syncing while its feed is being pushed) used to leave a gap in the nonce sequence, so the peer could
decrypt nothing more and cut the link with 4008. Found by the hostile-peer suite (frame flood)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
import trio
import trio.testing
from test_link import _pair, memory_ws
from trio_websocket import WebSocketConnection

from clawroomd.link import LinkClosed


def lockstep_ws() -> AbstractAsyncContextManager[tuple[WebSocketConnection, WebSocketConnection]]:
    """Like memory_ws, but a send waits until the other side reads (no buffer in between)."""
    return memory_ws(trio.testing.lockstep_stream_pair)


async def test_a_send_cancelled_before_it_starts_leaves_the_link_usable(autojump_clock: trio.abc.Clock) -> None:
    async with memory_ws() as (client, server):
        guest, host = await _pair(client, server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(guest.run)
            nursery.start_soon(host.run)
            with trio.CancelScope() as scope:
                scope.cancel()  # e.g. the local client that asked for this move has hung up
                await host.send({"lost": 1})
            await host.send({"next": 2})
            with trio.fail_after(5):
                assert await guest.receive() == {"next": 2}
            assert guest.closed is None and host.closed is None
            nursery.cancel_scope.cancel()


async def test_a_send_cancelled_while_blocked_ends_the_link_cleanly(autojump_clock: trio.abc.Clock) -> None:
    """A send waiting on a peer that does not read may have written part of its frame when cancelled: the
    link is closed (and says so to later senders) rather than left to carry a corrupt stream."""
    async with lockstep_ws() as (client, server):
        _guest, host = await _pair(client, server, queue_size=1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.run)  # the guest's reader never runs: it reads nothing
            with trio.move_on_after(5) as scope:
                while True:
                    await host.send({"pad": "x" * 4000})
            assert scope.cancelled_caught
            with pytest.raises(LinkClosed) as closed:
                await host.send({"after": 1})
            assert closed.value.error_code == "interrupted"
            nursery.cancel_scope.cancel()
