"""Shared fixtures: a real broker on ephemeral ports, real MQTT and HTTP clients."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from broker import EdgeBroker
from tests.helpers import WAIT, running_broker


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """asyncio; on uvloop (the edgemq command's loop) when EDGEMQ_TEST_LOOP=uvloop."""
    return "asyncio", {"use_uvloop": os.environ.get("EDGEMQ_TEST_LOOP") == "uvloop"}


@pytest.fixture
async def broker() -> AsyncIterator[EdgeBroker]:
    async with running_broker() as b:
        yield b


@pytest.fixture
async def api(broker: EdgeBroker) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the broker's admin API, with the default credentials."""
    async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public"), timeout=WAIT) as client:
        yield client
