"""A TCP relay that delays every byte by a fixed time in each direction: network latency
for the cluster tests and benchmark where the kernel has no netem qdisc.

    python -m tests.delay_relay --listen 10.77.0.1:8786 --to 127.0.0.1:18786 --delay-ms 5

Run on a host in front of a program listening on loopback, it makes every connection to
that program see ``delay`` more one-way latency: data read at time t from one side is
written to the other at t + delay, in order. (Unlike netem it delays messages, not
packets: TCP's own acknowledgements are not delayed, so bandwidth-delay effects are not
emulated; round trips of Dask's messages are.)
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(send())
    try:
        while data := await reader.read(1 << 16):
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0.0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def serve(listen: str, target: str, delay: float) -> None:
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)

    async def handle(reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, delay),
                             _pipe(up_reader, writer, delay))

    server = await asyncio.start_server(handle, lhost, int(lport))
    print(f"relaying {listen} -> {target} with {delay * 1000:g} ms each way", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    args = p.parse_args(argv)
    asyncio.run(serve(args.listen, args.to, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
