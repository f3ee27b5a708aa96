"""Defects found reviewing the core rewrite (broker/amqtt_adapter/, the subscription index, the
retained store), some older than it: each test proves one behaviour that must hold."""

from __future__ import annotations

import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import DISCONNECT, encode_connect, encode_subscribe
from tests.helpers import mqtt_client, next_message, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

PUBLISH, SUBACK = 0x30, 0x90


async def test_retained_messages_arrive_in_the_order_their_topics_were_retained(broker: EdgeBroker) -> None:
    """A new subscription gets the retained messages of one level in the order their topics were first retained."""
    topics = ["r/1", "r/2", "r/3"]
    async with mqtt_client(broker, "publisher") as publisher:
        for topic in topics:
            await publisher.publish(topic, topic.encode(), qos=1, retain=True)  # PUBACK: stored by then
    async with mqtt_client(broker, "subscriber") as subscriber:
        await subscriber.subscribe("r/+")
        received = [str((await next_message(subscriber)).topic) for _ in topics]
    assert received == topics


async def test_client_connecting_during_reset_leaves_no_subscription_behind(broker: EdgeBroker) -> None:
    """A clean client that connects while a reset closes the others takes its subscriptions with it when it leaves."""
    async with (
        RawClient.open(broker.mqtt_address) as early,
        RawClient.open(broker.mqtt_address) as late,
        RawClient.open(broker.mqtt_address) as barrier,
    ):
        assert await early.connack(encode_connect("early")) == (0, 0)  # a connection the reset waits for
        # accepted after "late", so once it is connected "late" waits for its CONNECT
        assert await barrier.connack(encode_connect("barrier")) == (0, 0)
        late.writer.write(encode_connect("late"))  # read by the broker while the reset waits
        await broker.reset()
        first, body = await late.read_packet()
        assert (first, body[1]) == (0x20, 0)
        await late.send(encode_subscribe(1, ("late/#", 0)))
        assert (await late.read_packet())[0] == SUBACK
        await late.send(DISCONNECT)
        assert await late.closed_by_peer()
    await wait_state(broker, lambda s: s.counts().subscribers == 0)


async def _offline_message_for(broker: EdgeBroker, client_id: str) -> None:
    """A persistent session of ``client_id`` subscribed to q/# at QoS 1, offline, with one QoS 1 message queued."""
    async with RawClient.open(broker.mqtt_address) as subscriber:
        assert await subscriber.connack(encode_connect(client_id, clean_session=False)) == (0, 0)
        await subscriber.send(encode_subscribe(1, ("q/#", 1)))
        assert (await subscriber.read_packet())[0] == SUBACK
        await subscriber.send(DISCONNECT)
    await wait_state(broker, lambda s: (c := s.client(client_id)) is not None and not c.connected)
    async with mqtt_client(broker, "publisher") as publisher:
        await publisher.publish("q/1", b"queued", qos=1)  # PUBACK: routed (queued offline) by then


async def test_offline_queue_survives_a_connection_that_ends_at_once(broker: EdgeBroker) -> None:
    """QoS 1 messages queued for an offline session survive a resumed connection that ends before they are sent."""
    await _offline_message_for(broker, "sleeper")
    async with RawClient.open(broker.mqtt_address) as brief:
        assert await brief.connack(encode_connect("sleeper", clean_session=False) + DISCONNECT) == (1, 0)
        assert await brief.closed_by_peer()
    await wait_state(broker, lambda s: (c := s.client("sleeper")) is not None and not c.connected)
    async with RawClient.open(broker.mqtt_address) as resumed:
        assert await resumed.connack(encode_connect("sleeper", clean_session=False)) == (1, 0)
        first, body = await resumed.read_packet()
    assert first & 0xF0 == PUBLISH
    assert (body[2:5], body[7:]) == (b"q/1", b"queued")  # topic; payload after the packet id


async def test_client_reconnecting_during_a_clean_kick_leaves_no_subscription_behind(broker: EdgeBroker) -> None:
    """A clean client that reconnects while a clean kick closes it takes its subscriptions with it when it leaves."""
    async with (
        RawClient.open(broker.mqtt_address) as kicked,
        RawClient.open(broker.mqtt_address) as again,
        RawClient.open(broker.mqtt_address) as barrier,
    ):
        assert await kicked.connack(encode_connect("device")) == (0, 0)
        # accepted after the second connection, so once it is connected that one waits for its CONNECT
        assert await barrier.connack(encode_connect("barrier")) == (0, 0)
        again.writer.write(encode_connect("device"))  # read by the broker while the kick waits
        assert await broker.kick("device", clean=True)
        first, body = await again.read_packet()
        assert (first, body[1]) == (0x20, 0)
        await again.send(encode_subscribe(1, ("device/#", 0)))
        assert (await again.read_packet())[0] == SUBACK
        await again.send(DISCONNECT)
        assert await again.closed_by_peer()
    await wait_state(broker, lambda s: s.counts().subscribers == 0)
