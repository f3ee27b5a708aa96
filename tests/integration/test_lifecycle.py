"""EdgeBroker's lifecycle: start is not re-entrant, a stopped broker starts again, its tasks."""

from __future__ import annotations

import asyncio
from typing import Literal

import aiomqtt
import pytest

from broker.mqtt.encoding import encode_connect
from broker.mqtt.stream_connection import TASK_NAME
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient

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
    """After stop(), start() brings the broker up again."""
    async with running_broker(ephemeral_settings()) as broker:
        await broker.stop()
        await broker.start()
        async with mqtt_client(broker, "again") as client:
            await client.subscribe("t")
            await client.publish("t", b"back")
            assert (await next_message(client)).payload == b"back"


def _running_coroutines() -> set[str]:
    return {getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks() if not t.done()}


async def test_amqtt_broadcast_loop_and_session_monitor_do_not_run() -> None:
    """amqtt's broadcast loop and 1 s session monitor are not left running: edgemq does their work."""
    async with running_broker() as broker, mqtt_client(broker, "c") as client:
        await client.subscribe("t")
        await client.publish("t", b"routed without amqtt's loop")
        assert (await next_message(client)).payload == b"routed without amqtt's loop"
        running = _running_coroutines()
    assert not {name for name in running if name.endswith(("._broadcast_loop", "._session_monitor"))}


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
async def test_connection_tasks_are_named_members_of_the_broker_task_group(
    transport: Literal["tcp", "websockets"],
) -> None:
    """Each task serving an MQTT connection is in the broker's task group as edgemq-mqtt-connection, until it ends."""
    settings = ephemeral_settings(listeners={"ws": {"bind": "127.0.0.1:0"}})
    async with running_broker(settings) as broker:
        host, port = broker.mqtt_addresses["ws" if transport == "websockets" else "tcp"]
        client = aiomqtt.Client(host, port, identifier="named", transport=transport, websocket_path="/mqtt")
        async with client:
            await wait_state(broker, lambda s: s.counts().connections == 1)
            assert broker.tasks.names()[TASK_NAME] == 1
            named = broker.tasks.running(TASK_NAME)
        await asyncio.wait(named, timeout=WAIT)
        assert broker.tasks.names()[TASK_NAME] == 0


async def test_stop_leaves_the_task_group_empty() -> None:
    """After stop, nothing the broker started is still running: connections and restarts included."""
    async with running_broker() as broker, RawClient.open(broker.mqtt_address) as left_open:
        assert await left_open.connack(encode_connect("left-open")) == (0, 0)
        broker.request_restart()
        assert broker.tasks.names()["edgemq-restart"] == 1
        await broker.stop()
        assert len(broker.tasks) == 0
