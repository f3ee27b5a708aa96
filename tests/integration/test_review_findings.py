"""Defects found reviewing the core rewrite (broker/amqtt_adapter/, the subscription index, the
retained store), some older than it: each test proves one behaviour that must hold."""

from __future__ import annotations

import pytest

from broker import EdgeBroker
from tests.helpers import mqtt_client, next_message

pytestmark = pytest.mark.anyio


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
