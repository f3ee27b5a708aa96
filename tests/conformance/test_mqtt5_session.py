"""MQTT 5.0 sessions: Clean Start and the Session Expiry Interval, set on CONNECT and changed on
DISCONNECT (3.1.2.4, 3.1.2.11.2, 3.14.2.2.2).

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import Target
from tests.mqtt5_packets import PUBLISH, V5Client, connected, disconnect, options, props, publish

pytestmark = pytest.mark.anyio

KEEP = props(session_expiry_interval=60)


async def queue_one(target: Target, topic: str) -> None:
    """Publish one QoS 1 message to ``topic`` from another client."""
    async with connected(target.address, "queue-publisher") as publisher:
        assert (await publisher.publish_acked(topic, b"queued")).reason in (0x00, 0x10)


async def leave_subscribed(target: Target, client_id: str, topic: str, **connect: object) -> None:
    """Connect ``client_id``, subscribe to ``topic`` at QoS 1 and disconnect normally."""
    async with connected(target.address, client_id, **connect) as client:
        assert (await client.subscribe((topic, options(1)))).reasons == [1]
        await client.send(disconnect())


async def test_session_expiry_zero_ends_the_session_with_the_connection(target: Target) -> None:
    """MQTT-3.1.2-23 (3.1.2.11.2): with no Session Expiry Interval the session ends with the connection."""
    await leave_subscribed(target, "brief", "brief/t")
    async with V5Client.open(target.address) as back:
        assert (await back.connect("brief", clean_start=False)).session_present is False


async def test_session_with_expiry_is_resumed_with_its_queued_message(target: Target) -> None:
    """MQTT-3.1.2-5, MQTT-3.2.2-3: a session with an expiry interval is resumed with the QoS 1 message queued for it."""
    await leave_subscribed(target, "durable", "durable/t", properties=KEEP)
    await queue_one(target, "durable/t")
    async with V5Client.open(target.address) as back:
        assert (await back.connect("durable", clean_start=False, properties=KEEP)).session_present is True
        message = await back.expect(PUBLISH)
        assert (message.topic, message.payload, message.qos) == ("durable/t", b"queued", 1)


async def test_clean_start_discards_the_session(target: Target) -> None:
    """MQTT-3.1.2-4, MQTT-3.2.2-2: Clean Start 1 discards the stored session: session present 0, nothing queued."""
    await leave_subscribed(target, "fresh", "fresh/t", properties=KEEP)
    await queue_one(target, "fresh/t")
    async with V5Client.open(target.address) as back:
        assert (await back.connect("fresh", clean_start=True, properties=KEEP)).session_present is False
        await back.subscribe(("fresh/marker", options(1)))
        await back.send(publish("fresh/marker", b"marker"))
        message = await back.expect(PUBLISH)
        assert message.topic == "fresh/marker", "the discarded session's queued message was delivered"


async def test_disconnect_can_end_the_session(target: Target) -> None:
    """3.14.2.2.2: a DISCONNECT with Session Expiry Interval 0 ends a session that had one."""
    async with connected(target.address, "ender", properties=KEEP) as client:
        await client.subscribe(("ender/t", options(1)))
        await client.send(disconnect(0, props(session_expiry_interval=0)))
        assert await client.closed_by_peer()
    async with V5Client.open(target.address) as back:
        assert (await back.connect("ender", clean_start=False)).session_present is False


async def test_disconnect_cannot_give_expiry_to_a_session_without_one(target: Target) -> None:
    """3.14.2.2.2: a DISCONNECT giving a Session Expiry Interval after CONNECT had 0 gets DISCONNECT 0x82."""
    async with connected(target.address, "stretcher") as client:
        await client.send(disconnect(0, props(session_expiry_interval=30)))
        await client.refused_with(0x82)


async def test_a_taken_over_connection_gets_disconnect_0x8e(target: Target) -> None:
    """MQTT-3.1.4-3: a CONNECT with a connected client id sends the older connection DISCONNECT 0x8E and closes it."""
    if target.name == "mosquitto":
        pytest.xfail("mosquitto 2.0.11 closes the older connection without a DISCONNECT")
    async with connected(target.address, "twin") as first, connected(target.address, "twin"):
        await first.refused_with(0x8E)


async def test_a_session_ends_when_its_expiry_interval_passes(target: Target) -> None:
    """MQTT-3.1.2-23 (3.1.2.11.2): a session is kept for its Session Expiry Interval after its connection, no longer."""
    await leave_subscribed(target, "mortal", "mortal/t", properties=props(session_expiry_interval=1))
    await asyncio.sleep(2.1)  # the behaviour under test: an expiry of 1 s measured in whole seconds
    async with V5Client.open(target.address) as back:
        assert (await back.connect("mortal", clean_start=False)).session_present is False
