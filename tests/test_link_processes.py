"""Two peer links in real processes on 127.0.0.1, with every byte on the wire captured by a relay between them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from clawroomd.core.identity import Identity
from clawroomd.core.joinurl import JoinURL

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("peer_link_proc.py")

pytestmark = pytest.mark.slow


async def _relay(listen_stream: trio.SocketStream, target_port: int, capture: bytearray) -> None:
    """Forward one connection to the host, appending both directions to `capture` (an on-path observer)."""
    upstream = await trio.open_tcp_stream("127.0.0.1", target_port)

    async def pump(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
        try:
            while data := await src.receive_some(65536):
                capture.extend(data)
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await dst.aclose()

    async with upstream, listen_stream, trio.open_nursery() as nursery:
        nursery.start_soon(pump, listen_stream, upstream)
        nursery.start_soon(pump, upstream, listen_stream)


async def _read_line(stream: trio.abc.ReceiveStream, buf: bytearray) -> dict[str, object]:
    with trio.fail_after(10):
        while b"\n" not in buf:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise AssertionError(f"process ended early: {bytes(buf)!r}")
            buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return dict(json.loads(line))


async def test_two_processes_join_and_the_wire_shows_no_plaintext() -> None:
    seed, static, secret = os.urandom(32), os.urandom(32), os.urandom(16)
    room = "cr_" + os.urandom(8).hex()
    marker = "MARKER-" + os.urandom(8).hex()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    capture = bytearray()
    host_args = [sys.executable, str(SCRIPT), "host", seed.hex(), static.hex(), room, secret.hex()]
    async with trio.open_nursery() as nursery:
        host = await trio.lowlevel.open_process(host_args, stdout=subprocess.PIPE, env=env)
        try:
            assert host.stdout is not None
            out = bytearray()
            ready = await _read_line(host.stdout, out)
            assert ready["peer_id"] == Identity.from_seed(seed).peer_id

            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            relay_port = listeners[0].socket.getsockname()[1]

            async def relay_once() -> None:
                stream = await listeners[0].accept()
                await listeners[0].aclose()
                await _relay(stream, int(ready["port"]), capture)  # type: ignore[call-overload]

            nursery.start_soon(relay_once)
            url = JoinURL(
                room_id=room, host_peer_id=str(ready["peer_id"]), addrs=(("127.0.0.1", relay_port),), secret=secret
            )
            # Pasted the way a chat app might deliver it.
            guest_args = [sys.executable, str(SCRIPT), "guest", os.urandom(32).hex(), f"<{url.format()}>.", marker]
            with trio.fail_after(20):
                guest = await trio.run_process(guest_args, capture_stdout=True, env=env)
            guest_out = json.loads(guest.stdout.decode().strip().splitlines()[-1])
            host_got = await _read_line(host.stdout, out)
            with trio.fail_after(10):
                assert await host.wait() == 0
        finally:
            if host.returncode is None:
                host.kill()
            with trio.CancelScope(shield=True):
                await host.wait()
                if host.stdout is not None:
                    await host.stdout.aclose()

    assert host_got["got"] == marker  # present after decryption ...
    assert guest_out["reply"] == "ack " + marker
    assert guest_out["sas"] == host_got["sas"]
    assert guest_out["peer"] == ready["peer_id"]
    wire = bytes(capture)
    assert b"GET /clawroom/1 HTTP/1.1" in wire  # the capture really is the socket's bytes
    for needle in (marker.encode(), marker[7:].encode(), secret, base64.urlsafe_b64encode(secret).rstrip(b"=")):
        assert needle not in wire  # ... and absent from every byte on the socket
