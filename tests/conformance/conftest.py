"""Brokers under test: edgemq, and a real mosquitto when it is installed.

Every conformance test talks MQTT only, so the same test checks the standard on both; a test
that mosquitto legitimately fails is marked with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ephemeral_settings, running_broker
from tests.upstream import MOSQUITTO, mosquitto_upstream


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


MOSQUITTO_KEYS = {
    "max_connections": "max_connections",
    "max_packet_size": "max_packet_size",
    "max_keepalive": "max_keepalive",
    "topic_alias_maximum": "max_topic_alias",
    "receive_maximum": "max_inflight_messages",  # its v5 Receive Maximum (it also caps mosquitto's own sending)
}
"""edgemq's ``mqtt`` options and the mosquitto.conf keys that set the same limit; an option that
mosquitto has no key for is edgemq-only (its tests skip mosquitto)."""


@contextlib.asynccontextmanager
async def _mosquitto(options: dict[str, Any], tmp_path: Path) -> AsyncIterator[Target]:
    config = [f"{MOSQUITTO_KEYS[key]} {value}" for key, value in options.items() if key in MOSQUITTO_KEYS]
    if "max_keepalive" not in options:
        config.append("max_keepalive 65535")
    async with mosquitto_upstream(tmp_path, config=config) as upstream:
        yield Target("mosquitto", upstream.address)


BROKERS = ["edgemq", pytest.param("mosquitto", marks=pytest.mark.skipif(MOSQUITTO is None, reason="no mosquitto"))]
if os.environ.get("EDGEMQ_CONFORMANCE_MOSQUITTO") == "0":  # scripts/test's extra passes: mosquitto was checked once
    BROKERS = BROKERS[:1]

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
