"""MQTT 5.0 PUBLISH: the properties a broker forwards unchanged, the message expiry interval, topic
aliases from the client, and messages between v5 and 3.1.1 clients (3.3.2.3).

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.mqtt.encoding import encode_connect, encode_publish, encode_subscribe
from tests.conformance.conftest import StartTarget, Target
from tests.mqtt5_packets import PUBLISH, V5Client, connected, disconnect, options, props, publish
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

FORWARDED = props(
    [("region", "eu"), ("trace", "1"), ("region", "us")],  # repeated name, order kept (MQTT-3.3.2-18)
    payload_format_indicator=1,
    content_type="application/json",
    response_topic="replies/42",
    correlation_data=b"\x00\x01request-42",
)
KEEP = props(session_expiry_interval=60)


async def test_publish_properties_are_forwarded_unchanged_to_a_v5_subscriber(target: Target) -> None:
    """MQTT-3.3.2-4, -15, -16, -17, -18, -20: the forwarded properties reach a v5 subscriber unchanged, in order."""
    async with connected(target.address, "v5-sub") as sub, connected(target.address, "v5-pub") as pub:
        await sub.subscribe(("props/t", options(1)))
        await pub.publish_acked("props/t", b'{"a": 1}', properties=FORWARDED)
        message = await sub.expect(PUBLISH)
    assert message.payload == b'{"a": 1}'
    assert message.properties.user_properties == FORWARDED.user_properties
    for name, value in FORWARDED.values.items():
        assert message.properties.get(name) == value, name


async def test_publish_properties_are_dropped_towards_a_311_subscriber(target: Target) -> None:
    """Messages from v5 to 3.1.1 clients lose their properties: the 3.1.1 PUBLISH is topic and payload only."""
    async with RawClient.open(target.address) as old, connected(target.address, "v5-pub") as pub:
        assert await old.connack(encode_connect("v311-sub")) == (0, 0)
        await old.send(encode_subscribe(1, ("props/t", 0)))
        assert (await old.read_packet())[0] == 0x90
        await pub.publish_acked("props/t", b"payload", properties=FORWARDED)
        assert await old.read_packet() == (0x30, encode_publish("props/t", b"payload")[2:])


async def test_a_311_message_reaches_a_v5_subscriber_without_properties(target: Target) -> None:
    """A 3.1.1 client's PUBLISH reaches a v5 subscriber with an empty property block."""
    async with connected(target.address, "v5-sub") as sub, RawClient.open(target.address) as old:
        await sub.subscribe(("old/t", options(0)))
        assert await old.connack(encode_connect("v311-pub")) == (0, 0)
        await old.send(encode_publish("old/t", b"from 3.1.1"))
        message = await sub.expect(PUBLISH)
    assert (message.topic, message.payload, bool(message.properties)) == ("old/t", b"from 3.1.1", False)


async def test_message_expiry_is_forwarded_to_an_online_subscriber(target: Target) -> None:
    """MQTT-3.3.2-6: a message delivered at once carries its Message Expiry Interval (less at most a second)."""
    async with connected(target.address, "sub") as sub, connected(target.address, "pub") as pub:
        await sub.subscribe(("exp/t", options(1)))
        await pub.publish_acked("exp/t", b"x", properties=props(message_expiry_interval=60))
        interval = (await sub.expect(PUBLISH)).properties.get("message_expiry_interval")
    assert isinstance(interval, int)
    assert 59 <= interval <= 60


async def wait_offline(target: Target, client_id: str, topic: str, *messages: tuple[bytes, int]) -> None:
    """Leave ``client_id`` subscribed to ``topic`` in a kept session; publish (payload, expiry) messages to it."""
    async with connected(target.address, client_id, properties=KEEP) as sub:
        await sub.subscribe((topic, options(1)))
        await sub.send(disconnect())
    async with connected(target.address, "pub") as pub:
        for packet_id, (payload, expiry) in enumerate(messages, start=1):
            await pub.publish_acked(
                topic, payload, packet_id=packet_id, properties=props(message_expiry_interval=expiry)
            )


async def test_an_expired_queued_message_is_not_delivered(target: Target) -> None:
    """MQTT-3.3.2-5: a message queued for an offline session past its expiry interval is dropped; a live one is not."""
    await wait_offline(target, "away", "away/t", (b"stale", 1), (b"fresh", 60))
    await asyncio.sleep(2.1)  # the behaviour under test: an expiry of 1 s measured in whole seconds
    async with V5Client.open(target.address) as back:
        assert (await back.connect("away", clean_start=False, properties=KEEP)).session_present
        assert (await back.expect(PUBLISH)).payload == b"fresh"


async def test_a_queued_message_carries_its_reduced_expiry_interval(target: Target) -> None:
    """MQTT-3.3.2-6: the Message Expiry Interval sent on is reduced by the time the message waited in the broker."""
    await wait_offline(target, "later", "later/t", (b"aged", 60))
    await asyncio.sleep(1.1)  # the behaviour under test: at least one whole second of waiting
    async with V5Client.open(target.address) as back:
        assert (await back.connect("later", clean_start=False, properties=KEEP)).session_present
        interval = (await back.expect(PUBLISH)).properties.get("message_expiry_interval")
    assert isinstance(interval, int)
    assert 1 <= interval <= 59


async def test_a_topic_alias_set_by_the_client_names_the_topic_later(target: Target) -> None:
    """3.3.2.3.4: a PUBLISH with a topic and alias 1 sets the alias; a later empty topic with alias 1 is that topic."""
    async with connected(target.address, "sub") as sub, connected(target.address, "aliaser") as pub:
        await sub.subscribe(("alias/t", options(1)))
        await pub.publish_acked("alias/t", b"first", packet_id=1, properties=props(topic_alias=1))
        await pub.publish_acked("", b"second", packet_id=2, properties=props(topic_alias=1))
        received = [await sub.expect(PUBLISH), await sub.expect(PUBLISH)]
    assert [(m.topic, m.payload) for m in received] == [("alias/t", b"first"), ("alias/t", b"second")]
    assert all(m.properties.get("topic_alias") is None for m in received)  # MQTT-3.3.2-7: not forwarded


async def test_a_topic_alias_over_the_maximum_is_refused_with_0x94(start_target: StartTarget) -> None:
    """MQTT-3.3.2-9 (3.3.2.3.4): a Topic Alias over the broker's maximum gets DISCONNECT 0x94 and a close."""
    async with start_target(topic_alias_maximum=2) as target, connected(target.address, "greedy") as client:
        await client.send(publish("alias/t", b"x", properties=props(topic_alias=3)))
        await client.refused_with(0x94)


async def test_an_unknown_topic_alias_with_an_empty_topic_is_a_protocol_error(target: Target) -> None:
    """3.3.2.3.4: an empty topic with an alias that names no topic is a protocol error: DISCONNECT 0x82, close."""
    async with connected(target.address, "forgetful") as client:
        await client.send(publish("", b"x", properties=props(topic_alias=1)))
        await client.refused_with(0x82)


async def test_a_retained_message_keeps_its_properties(target: Target) -> None:
    """3.3.1.3, MQTT-3.3.2-17, -20: a retained message reaches a later v5 subscriber with its forwarded properties."""
    async with connected(target.address, "holder") as holder:
        await holder.publish_acked("kept/t", b"kept", retain=True, properties=FORWARDED)
    async with connected(target.address, "late") as late:
        await late.subscribe(("kept/t", options(0)))
        message = await late.expect(PUBLISH)
    assert (message.payload, message.retain) == (b"kept", True)
    assert message.properties.user_properties == FORWARDED.user_properties
    for name, value in FORWARDED.values.items():
        assert message.properties.get(name) == value, name


async def test_a_queued_message_keeps_its_properties(target: Target) -> None:
    """MQTT-3.3.2-17, -20: a message queued for an offline session is delivered later with its forwarded properties."""
    async with connected(target.address, "offline", properties=KEEP) as sub:
        await sub.subscribe(("offline/t", options(1)))
        await sub.send(disconnect())
    async with connected(target.address, "pub") as pub:
        await pub.publish_acked("offline/t", b"stored", properties=FORWARDED)
    async with V5Client.open(target.address) as back:
        assert (await back.connect("offline", clean_start=False, properties=KEEP)).session_present
        message = await back.expect(PUBLISH)
    assert message.properties.user_properties == FORWARDED.user_properties
    for name, value in FORWARDED.values.items():
        assert message.properties.get(name) == value, name


async def test_an_expired_retained_message_is_not_sent(target: Target) -> None:
    """MQTT-3.3.2-5: a retained message past its Message Expiry Interval is not sent to a new subscriber."""
    async with connected(target.address, "holder") as holder:
        await holder.publish_acked("short/t", b"stale", retain=True, properties=props(message_expiry_interval=1))
    await asyncio.sleep(2.1)  # the behaviour under test: an expiry of 1 s measured in whole seconds
    async with connected(target.address, "late") as late:
        await late.subscribe(("short/t", options(0)))
        await late.send(publish("short/t", b"marker"))
        assert (await late.expect(PUBLISH)).payload == b"marker"
