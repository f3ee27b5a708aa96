"""Benchmark program (scripts/bench_flows.py): the baseline, plain amqtt 0.12.1 with anonymous
access and no other plugin, on 127.0.0.1:PORT until it is terminated.

Usage: amqtt_broker.py PORT.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from amqtt.broker import Broker


async def serve(port: int) -> None:
    listeners = {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}
    plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    broker = Broker({"listeners": listeners, "plugins": plugins})
    await broker.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(serve(int(sys.argv[1])))
