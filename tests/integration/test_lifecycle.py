"""EdgeBroker's lifecycle: start is not re-entrant, a stopped broker starts again."""

from __future__ import annotations

import pytest

from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker

pytestmark = pytest.mark.anyio


async def test_second_start_raises_and_leaves_nothing_behind() -> None:
    """start() on a running broker raises; the broker keeps serving and stops without leftover tasks."""
    async with running_broker() as broker:
        address = broker.mqtt_address
        with pytest.raises(RuntimeError, match="running already"):
            await broker.start()
        assert broker.mqtt_address == address
        async with mqtt_client(broker, "still") as client:
            await client.subscribe("t")
            await client.publish("t", b"served")
            assert (await next_message(client)).payload == b"served"


async def test_stopped_broker_starts_again() -> None:
    """After stop(), start() brings the broker up again on fresh ports."""
    async with running_broker(ephemeral_settings()) as broker:
        await broker.stop()
        await broker.start()
        async with mqtt_client(broker, "again") as client:
            await client.subscribe("t")
            await client.publish("t", b"back")
            assert (await next_message(client)).payload == b"back"
