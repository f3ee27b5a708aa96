"""Brokers under test: edgemq, and a real mosquitto when it is installed.

Every conformance test talks MQTT only, so the same test checks the standard on both; a test
that mosquitto legitimately fails is marked with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WAIT, ephemeral_settings, running_broker

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@dataclass
class Target:
    """A running broker under test."""

    name: str
    address: tuple[str, int]
    edgemq: Any = None  # the EdgeBroker, for edgemq-only checks


@contextlib.asynccontextmanager
async def _edgemq(options: dict[str, Any]) -> AsyncIterator[Target]:
    async with running_broker(ephemeral_settings(mqtt=options, shutdown_timeout=2.0)) as broker:
        yield Target("edgemq", broker.mqtt_address, broker)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def _mosquitto(options: dict[str, Any], tmp_path: Path) -> AsyncIterator[Target]:
    assert MOSQUITTO is not None
    port = _free_port()
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", "max_keepalive 65535"]
    if "max_connections" in options:
        lines.append(f"max_connections {options['max_connections']}")
    if "max_packet_size" in options:
        lines.append(f"max_packet_size {options['max_packet_size']}")
    conf = tmp_path / "mosquitto.conf"
    lines += ["log_dest stderr", "log_type information"]
    conf.write_text("\n".join(lines) + "\n")
    process = await asyncio.create_subprocess_exec(
        MOSQUITTO, "-c", str(conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(WAIT):
            while b" running" not in (line := await process.stderr.readline()):  # "mosquitto version X running"
                assert line, "mosquitto exited before it was running"
        drain = asyncio.create_task(process.stderr.read())  # keep its log pipe from filling up
        yield Target("mosquitto", ("127.0.0.1", port))
    finally:
        process.terminate()
        await process.wait()
        if "drain" in locals():
            await drain


BROKERS = ["edgemq", pytest.param("mosquitto", marks=pytest.mark.skipif(MOSQUITTO is None, reason="no mosquitto"))]

StartTarget = Callable[..., contextlib.AbstractAsyncContextManager[Target]]


@pytest.fixture(params=BROKERS)
def start_target(request: pytest.FixtureRequest, tmp_path: Path) -> StartTarget:
    """``async with start_target(**mqtt_options) as target`` starts the broker under test."""

    def start(**options: Any) -> contextlib.AbstractAsyncContextManager[Target]:
        return _edgemq(options) if request.param == "edgemq" else _mosquitto(options, tmp_path)

    return start


@pytest.fixture
async def target(start_target: StartTarget) -> AsyncIterator[Target]:
    async with start_target() as running:
        yield running
