"""Faults on deliveries, seen by real clients: dropped (counted in req 2), delayed, duplicated."""

from __future__ import annotations

import httpx
import pytest

from broker import EdgeBroker, ThreadedBroker
from tests.helpers import mqtt_client, next_message, v1
from tests.integration.fault_checks import assert_healthy, assert_nothing_was_left_for, broker_tasks
from tests.integration.paho_client import PahoClient


@pytest.mark.anyio
async def test_dropped_deliveries_are_counted_as_drops(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """The next N copies to a filter never reach the client and are req 2's message_drop."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("a/#", qos=1)
        with broker.faults.drop_deliveries(2, topic_filter="a/#") as scope:
            for n in range(1, 4):
                await broker.publish(f"a/{n}", b"%d" % n, qos=1)
            assert (await next_message(app)).payload == b"3"
            assert not scope.is_active
        assert (await v1(api, 2))["message_drop"] == 2
        await assert_healthy(broker, before)
    await assert_nothing_was_left_for(broker, "app", drops=2)


@pytest.mark.anyio
async def test_drop_for_one_client_spares_the_others(broker: EdgeBroker) -> None:
    """A drop fault naming a client leaves the copies of other clients alone."""
    async with mqtt_client(broker, "one") as one, mqtt_client(broker, "two") as two:
        for client in (one, two):
            await client.subscribe("t")
        with broker.faults.drop_deliveries(1, client_id="one"):
            await broker.publish("t", b"first")
            await broker.publish("t", b"second")
        assert (await next_message(one)).payload == b"second"
        assert (await next_message(two)).payload == b"first"


@pytest.mark.anyio
async def test_delayed_copies_arrive_after_later_undelayed_ones(broker: EdgeBroker) -> None:
    """A copy on a delayed filter reaches the client after one routed later on another topic."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("#", qos=1)
        with broker.faults.delay_deliveries(3600, topic_filter="slow/#"):  # longer than the test: the undo ends it
            await broker.publish("slow/1", b"slow", qos=1)
            await broker.publish("fast/1", b"fast", qos=1)
            assert (await next_message(app)).payload == b"fast"
        assert (await next_message(app)).payload == b"slow"
        await assert_healthy(broker, before)
    await assert_nothing_was_left_for(broker, "app")


@pytest.mark.anyio
async def test_undo_sends_the_delayed_copies_at_once(broker: EdgeBroker) -> None:
    """Copies held back for longer than the test waits leave as soon as the fault is undone."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("#", qos=1)
        scope = broker.faults.delay_deliveries(3600, client_id="app")
        await broker.publish("held", b"held", qos=1)
        scope.undo()
        assert (await next_message(app)).payload == b"held"
        await assert_healthy(broker, before)
    await assert_nothing_was_left_for(broker, "app")


@pytest.mark.anyio
async def test_random_delays_keep_the_order_of_copies(broker: EdgeBroker) -> None:
    """Copies delayed by random amounts still reach the client in the order they were routed."""
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("t", qos=1)
        with broker.faults.delay_deliveries((0.0, 0.2), topic_filter="t"):
            for n in range(8):
                await broker.publish("t", b"%d" % n, qos=1)
            assert [(await next_message(app)).payload for _ in range(8)] == [b"%d" % n for n in range(8)]


def test_duplicate_is_a_dup_redelivery_with_the_same_packet_id(mqtt_broker: ThreadedBroker) -> None:
    """paho receives the next QoS 1 message twice: same packet id, DUP only on the second; the one after once."""
    address = (mqtt_broker.mqtt_host, mqtt_broker.mqtt_port)
    subscriber, publisher = PahoClient(address, "sub"), PahoClient(address, "pub")
    for client in (subscriber, publisher):
        client.connect()
    try:
        subscriber.subscribe("orders/#", qos=1)
        with mqtt_broker.faults.duplicate_deliveries(topic_filter="orders/#") as scope:
            publisher.client.publish("orders/1", b"once", qos=1)
            first, second = subscriber.next(subscriber.messages), subscriber.next(subscriber.messages)
            assert not scope.is_active
        assert (first.payload, second.payload) == (b"once", b"once")
        assert (first.mid, first.dup, second.dup) == (second.mid, False, True)
        publisher.client.publish("orders/2", b"next", qos=1)
        publisher.client.publish("orders/3", b"last", qos=1)
        assert [subscriber.next(subscriber.messages).payload for _ in range(2)] == [b"next", b"last"]
        assert mqtt_broker.faults.active_faults == []
    finally:
        for client in (subscriber, publisher):
            client.close()


@pytest.mark.anyio
async def test_aiomqtt_receives_the_duplicate_and_acknowledges_both(broker: EdgeBroker) -> None:
    """aiomqtt gets the duplicated copy twice; its two PUBACKs leave nothing in flight."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("t", qos=1)
        with broker.faults.duplicate_deliveries(client_id="app"):
            await broker.publish("t", b"twice", qos=1)
            await broker.publish("t", b"once", qos=1)
            assert [(await next_message(app)).payload for _ in range(3)] == [b"twice", b"twice", b"once"]
        await assert_healthy(broker, before)
    await assert_nothing_was_left_for(broker, "app")
