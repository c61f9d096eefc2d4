"""A bare trio-websocket echo server: the baseline the relay benchmark is compared with."""

import sys

import trio
from trio_websocket import ConnectionClosed, serve_websocket


async def handler(request):  # type: ignore[no-untyped-def]
    ws = await request.accept()
    try:
        while True:
            await ws.send_message(await ws.get_message())
    except ConnectionClosed:
        pass


async def main() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        print(server.port, flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
