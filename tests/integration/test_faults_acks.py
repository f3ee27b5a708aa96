"""Withheld acknowledgements (a slow broker), seen by real clients: PUBACK and PUBCOMP wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from broker import EdgeBroker, ThreadedBroker
from broker.testing.clock import ManualClock
from tests.helpers import WAIT, mqtt_client, running_broker, wait_state
from tests.integration.fault_checks import assert_healthy, assert_nothing_was_left_for, broker_tasks
from tests.integration.paho_client import PahoClient


@pytest.fixture
def paho_publisher(mqtt_broker: ThreadedBroker) -> Iterator[PahoClient]:
    client = PahoClient((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "pub")
    client.connect()
    yield client
    client.close()


@pytest.mark.parametrize("qos", [1, 2])
def test_paho_publish_stays_unacknowledged_until_undo(
    mqtt_broker: ThreadedBroker, paho_publisher: PahoClient, qos: int
) -> None:
    """A QoS 1 (2) publish is routed but gets no PUBACK (PUBCOMP) until the fault is undone."""
    with mqtt_broker.faults.withhold_acks("pub"):
        sent = paho_publisher.client.publish("t", b"slow", qos=qos)
        assert mqtt_broker.wait_for_message("t").payload == b"slow"
        paho_publisher.subscribe("anything")  # a round trip: the broker answers, but not that
        assert not sent.is_published()
    sent.wait_for_publish(WAIT)
    assert sent.is_published()
    assert mqtt_broker.faults.active_faults == []


@pytest.mark.anyio
async def test_acks_withheld_for_a_time_come_by_themselves() -> None:
    """withhold_acks(client, seconds) holds the PUBACK back, then (on the broker's clock) clears
    itself and sends it."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "app") as app:
        scope = broker.faults.withhold_acks("app", seconds=30)
        publishing = asyncio.ensure_future(app.publish("t", b"slow", qos=1))
        await wait_state(broker, lambda state: state.stats().message_in == 1)  # routed
        await app.subscribe("anything")  # a round trip after the PUBLISH
        assert not publishing.done()
        clock.advance(29)
        assert scope.is_active
        clock.advance(1)
        await asyncio.wait_for(publishing, WAIT)
        assert not scope.is_active


def test_other_clients_are_acknowledged_meanwhile(mqtt_broker: ThreadedBroker, paho_publisher: PahoClient) -> None:
    """Acknowledgements withheld from one client leave the others' alone."""
    other = PahoClient((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "other")
    other.connect()
    try:
        with mqtt_broker.faults.withhold_acks("pub"):
            held = paho_publisher.client.publish("t", b"held", qos=1)
            other.client.publish("t", b"free", qos=1).wait_for_publish(WAIT)
            assert not held.is_published()
    finally:
        other.close()


@pytest.mark.anyio
async def test_aiomqtt_publish_waits_for_its_puback(broker: EdgeBroker) -> None:
    """aiomqtt's QoS 1 publish does not return while the PUBACK is withheld, and does at the undo."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        scope = broker.faults.withhold_acks("app")
        publishing = asyncio.ensure_future(app.publish("t", b"slow", qos=1))
        await wait_state(broker, lambda state: state.stats().message_in == 1)  # routed
        await app.subscribe("anything")  # a round trip after the PUBLISH
        assert not publishing.done()
        scope.undo()
        await asyncio.wait_for(publishing, WAIT)
        await assert_healthy(broker, before)
    await assert_nothing_was_left_for(broker, "app", drops=1)  # "t" matched no subscription
