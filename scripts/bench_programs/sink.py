"""Benchmark program (scripts/bench_flows.py, ceiling): the least a server can do, on 127.0.0.1:PORT.

Usage: sink.py PORT. Answers each connection's first CONNECT with CONNACK 0 and drops everything
else, so the load generator's own rates are measured. Runs on uvloop when it is installed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast


class Sink(asyncio.Protocol):
    """One connection: answer the CONNECT, drop the rest."""

    transport: asyncio.WriteTransport
    answered: bool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.answered = cast(asyncio.WriteTransport, transport), False

    def data_received(self, data: bytes) -> None:
        if not self.answered and data[:1] == b"\x10":
            self.answered = True
            self.transport.write(b"\x20\x02\x00\x00")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", port)
    await server.serve_forever()


def main(port: int) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main(int(sys.argv[1]))
