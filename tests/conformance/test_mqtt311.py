"""MQTT 3.1.1 behaviours that plain amqtt 0.12.1 gets wrong, checked on edgemq and on mosquitto.

Each test talks to the broker over raw sockets or aiomqtt only. Section numbers refer to
OASIS MQTT Version 3.1.1.
"""

from __future__ import annotations

import asyncio
import struct

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.mqtt.encoding import DISCONNECT, encode_connect, encode_puback, encode_publish, encode_subscribe
from tests.conformance.conftest import StartTarget, Target
from tests.helpers import WAIT, next_message
from tests.mqtt_packets import RawClient, packet
from tests.mqtt_proxy import MqttProxy

pytestmark = pytest.mark.anyio

PUBACK, PUBLISH_TYPE = 0x40, 0x30


def client(target: Target, client_id: str, **options: object) -> aiomqtt.Client:
    return aiomqtt.Client(*target.address, identifier=client_id, **options)  # type: ignore[arg-type]


async def marker_roundtrip(target: Target) -> None:
    """The broker still routes for an unrelated client."""
    async with client(target, "bystander") as bystander:
        await bystander.subscribe("still/alive")
        await bystander.publish("still/alive", b"yes")
        assert (await next_message(bystander)).payload == b"yes"


async def test_keep_alive_is_enforced_and_publishes_the_will(target: Target) -> None:
    """3.1.2.10: no packet within 1.5 x keep-alive closes the connection, and the will is published."""
    async with client(target, "watcher") as watcher, RawClient.open(target.address) as silent:
        await watcher.subscribe("wills/#")
        assert await silent.connack(
            encode_connect("silent", keep_alive=1, will=("wills/silent", b"gone", 0, False))
        ) == (0, 0)
        assert await silent.closed_by_peer(timeout=2 * WAIT)  # mosquitto checks keep-alives every few seconds
        assert (await next_message(watcher)).payload == b"gone"


async def test_delivered_qos_is_the_minimum(target: Target) -> None:
    """3.8.4: a QoS 0 publish to a QoS 1 subscription arrives at QoS 0, QoS 2 at QoS 1."""
    async with client(target, "sub") as sub, client(target, "pub") as pub:
        await sub.subscribe("q/t", qos=1)
        await pub.publish("q/t", b"0", qos=0)
        assert (await next_message(sub)).qos == 0
        await pub.publish("q/t", b"2", qos=2)
        assert (await next_message(sub)).qos == 1


async def test_retained_messages_only_for_the_subscribers_own_filters(target: Target) -> None:
    """3.3.1.3: retained messages go to the subscribing client, for the filters of its SUBSCRIBE only."""
    async with client(target, "holder") as holder:
        await holder.subscribe("r/#")
        await holder.publish("r/1", b"retained", retain=True, qos=1)
        await next_message(holder)
        async with client(target, "other") as other:
            await other.subscribe("other/#")
            await other.publish("other/marker", b"marker")
            assert (await next_message(other)).payload == b"marker"
    async with client(target, "cleanup") as cleanup:
        await cleanup.publish("r/1", b"", retain=True, qos=1)


async def test_client_id_takeover(target: Target) -> None:
    """3.1.4-2: a CONNECT with a connected client id closes the older connection."""
    async with RawClient.open(target.address) as first, RawClient.open(target.address) as second:
        assert await first.connack(encode_connect("twin")) == (0, 0)
        assert await second.connack(encode_connect("twin")) == (0, 0)
        assert await first.closed_by_peer()


async def test_refused_connect_leaves_no_session(target: Target) -> None:
    """3.2.2.3: a refused CONNECT (bad protocol level) leaves no session: the next one is new."""
    async with RawClient.open(target.address) as refused:
        bad = bytearray(encode_connect("ghost", clean_session=False))
        bad[8] = 2  # protocol level
        await refused.send(bytes(bad))
        first, body = await refused.read_packet()
        assert (first, body[1]) == (0x20, 1)
    async with RawClient.open(target.address) as retry:
        assert await retry.connack(encode_connect("ghost", clean_session=False)) == (0, 0)
        await retry.send(DISCONNECT)
    async with RawClient.open(target.address) as cleanup:
        await cleanup.connack(encode_connect("ghost", clean_session=True))


async def test_persistent_session_queues_messages(target: Target) -> None:
    """3.1.2.4: a clean-session-0 client gets session present 1 and its queued QoS 1 message (retain 0)."""
    async with client(target, "durable", clean_session=False) as durable:
        await durable.subscribe("d/#", qos=1)
    async with client(target, "pub") as pub:
        await pub.publish("d/1", b"queued", qos=1)
    async with RawClient.open(target.address) as back:
        assert await back.connack(encode_connect("durable", clean_session=False)) == (1, 0)
        first, body = await back.read_packet()
        assert first & 0xF0 == PUBLISH_TYPE
        assert (first >> 1) & 3 == 1  # QoS 1
        assert first & 1 == 0  # retain 0 (3.3.1.3)
        assert body.endswith(b"queued")
    async with RawClient.open(target.address) as clean:
        assert await clean.connack(encode_connect("durable", clean_session=True)) == (0, 0)
        await clean.send(DISCONNECT)
    async with RawClient.open(target.address) as again:
        assert await again.connack(encode_connect("durable", clean_session=False)) == (0, 0)
        await again.send(DISCONNECT)
    async with RawClient.open(target.address) as cleanup:
        await cleanup.connack(encode_connect("durable", clean_session=True))


async def test_unacknowledged_message_is_redelivered_with_dup(target: Target) -> None:
    """4.4: an unacknowledged QoS 1 message stays in flight (beyond amqtt's 5 s) and is resent with DUP=1."""
    async with RawClient.open(target.address) as sub:
        assert await sub.connack(encode_connect("slow", clean_session=False)) == (0, 0)
        await sub.send(encode_subscribe(1, ("slow/#", 1)))
        await sub.read_packet()  # SUBACK
        async with client(target, "pub") as pub:
            await pub.publish("slow/t", b"ack me", qos=1)
        first, body = await sub.read_packet()
        assert first & 0xFE == PUBLISH_TYPE | 0x02  # QoS 1, DUP 0
        await asyncio.sleep(6)  # the behaviour under test: longer than amqtt's fixed 5 s timeout
        sub.abort()
    async with RawClient.open(target.address) as back:
        assert await back.connack(encode_connect("slow", clean_session=False)) == (1, 0)
        first, again = await back.read_packet()
        assert first & 0x08  # DUP 1
        assert again == body
        await back.send(encode_puback(int.from_bytes(again[-len(b"ack me") - 2 : -len(b"ack me")], "big")))
        await back.send(DISCONNECT)
    async with RawClient.open(target.address) as cleanup:
        await cleanup.connack(encode_connect("slow", clean_session=True))


async def _puback_then_close(conn: RawClient, packet_id: int) -> None:
    """The PUBACK for ``packet_id`` arrives before the broker closes the connection."""
    while True:
        first, body = await conn.read_packet()
        if first == PUBACK:
            assert body == packet_id.to_bytes(2, "big")
            break
    assert await conn.closed_by_peer()


async def test_puback_is_sent_before_closing_on_end_of_stream(target: Target) -> None:
    """4.3.2: a QoS 1 PUBLISH the broker took is acknowledged even when the client half-closes right after it."""
    async with RawClient.open(target.address) as pub:
        assert await pub.connack(encode_connect("half-close")) == (0, 0)
        await pub.send(encode_publish("hc/t", b"x") * 100 + encode_publish("hc/t", b"last", qos=1, packet_id=7))
        pub.writer.write_eof()
        await _puback_then_close(pub, 7)
    await marker_roundtrip(target)


async def test_puback_is_sent_before_closing_on_a_malformed_packet(target: Target) -> None:
    """4.3.2, 4.8: a QoS 1 PUBLISH before a malformed packet is acknowledged, then the connection closes."""
    async with RawClient.open(target.address) as pub:
        assert await pub.connack(encode_connect("then-garbage")) == (0, 0)
        await pub.send(encode_publish("mg/t", b"ok", qos=1, packet_id=9) + b"\x00\x00")
        await _puback_then_close(pub, 9)
    await marker_roundtrip(target)


async def test_nothing_after_disconnect_is_routed(target: Target) -> None:
    """3.14.4: after DISCONNECT the server discards the connection; a PUBLISH behind it is not routed."""
    async with client(target, "after-sub") as sub:
        await sub.subscribe("after/#")
        async with RawClient.open(target.address) as quitter:
            assert await quitter.connack(encode_connect("quitter")) == (0, 0)
            await quitter.send(DISCONNECT + encode_publish("after/ghost", b"ghost"))
            assert await quitter.closed_by_peer()
        await sub.publish("after/marker", b"marker")
        assert (await next_message(sub)).payload == b"marker"


async def test_will_on_protocol_error_but_not_after_disconnect(target: Target) -> None:
    """3.1.2.5: the will is published after a protocol error, never after DISCONNECT."""
    async with client(target, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with RawClient.open(target.address) as polite:
            await polite.connack(encode_connect("polite", will=("wills/polite", b"polite", 0, False)))
            await polite.send(DISCONNECT)
        async with RawClient.open(target.address) as faulty:
            await faulty.connack(encode_connect("faulty", will=("wills/faulty", b"faulty", 0, False)))
            await faulty.send(encode_publish("a/b", b"x", qos=0)[:1] + b"\x06" + b"\x00\x03a/+x")  # wildcard topic
            assert await faulty.closed_by_peer()
        assert (await next_message(watcher)).payload == b"faulty"


def _publish_with_raw_topic(topic: bytes, first: int = 0x30) -> bytes:
    return packet(first, struct.pack("!H", len(topic)) + topic + b"payload")


MALFORMED = {
    "garbage": b"\x00\xff\xfe garbage \x00" * 10,
    "bad remaining length": b"\x30\xff\xff\xff\xff\x7f",
    "invalid utf-8 topic": _publish_with_raw_topic(b"a/\xff\xfe"),
    "qos 3": _publish_with_raw_topic(b"a/b", first=0x36),
    "wildcard topic": _publish_with_raw_topic(b"a/#"),
    "subscribe without filter": b"\x82\x02\x00\x01",
    "subscribe with qos 3": b"\x82\x06\x00\x01\x00\x01a\x03",
    "unsubscribe without filter": b"\xa2\x02\x00\x01",
    "subscribe with an empty filter": b"\x82\x05\x00\x01\x00\x00\x00",
    "unsubscribe with an empty filter": b"\xa2\x04\x00\x01\x00\x00",
    "second connect": encode_connect("again"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_packet_closes_only_that_connection(target: Target, case: str) -> None:
    """1.5.3, 2.2, 3.1.0-2, 3.3.1.2, 3.3.2.1, 3.8.3, 3.10.3, 4.7.3-1: the connection is closed; others carry on."""
    async with RawClient.open(target.address) as bad:
        if case != "garbage":
            assert await bad.connack(encode_connect(f"bad-{case.replace(' ', '-')}")) == (0, 0)
        await bad.send(MALFORMED[case])
        assert await bad.closed_by_peer()
    await marker_roundtrip(target)


async def test_publish_before_connect_closes(target: Target) -> None:
    """3.1.0-1: a PUBLISH as the first packet closes the connection."""
    async with RawClient.open(target.address) as early:
        await early.send(encode_publish("a/b", b"too early"))
        assert await early.closed_by_peer()
    await marker_roundtrip(target)


async def test_truncated_packet_closes(target: Target) -> None:
    """A connection that ends in the middle of a packet is closed; others carry on."""
    async with RawClient.open(target.address) as cut:
        await cut.connack(encode_connect("cut"))
        await cut.send(encode_publish("a/b", b"x" * 100)[:20])
        cut.abort()
    await marker_roundtrip(target)


async def test_max_connections_refuses_at_once(start_target: StartTarget) -> None:
    """A client over the connection limit is refused at once and closed, never left hanging."""
    async with (
        start_target(max_connections=1) as target,
        RawClient.open(target.address) as first,
        RawClient.open(target.address) as extra,
    ):
        assert await first.connack(encode_connect("first")) == (0, 0)
        await extra.send(encode_connect("extra"))
        assert await extra.closed_by_peer()


async def test_oversized_packet_closes_only_that_connection(start_target: StartTarget) -> None:
    """A packet over max_packet_size closes that connection only."""
    async with start_target(max_packet_size=1024) as target, RawClient.open(target.address) as big:
        assert await big.connack(encode_connect("big")) == (0, 0)
        await big.send(encode_publish("big/t", b"x" * 2048))
        assert await big.closed_by_peer()
        await marker_roundtrip(target)


async def test_dollar_topics_reach_only_filters_with_the_same_dollar_level(target: Target) -> None:
    """4.7.2-1: a PUBLISH to a $ topic is acknowledged and routed to "$app/#", never to "#" or "+/x"."""
    async with (
        client(target, "dollar-sub") as dollar,
        client(target, "all-sub") as everything,
        client(target, "dollar-pub") as pub,
    ):
        await dollar.subscribe("$app/#", qos=1)
        await everything.subscribe([("#", 1), ("+/x", 1)])
        await pub.publish("$app/x", b"for dollar filters", qos=1)  # returns once PUBACK arrived
        assert (await next_message(dollar)).payload == b"for dollar filters"
        await pub.publish("plain/x", b"public", qos=1)
        assert (await next_message(everything)).payload == b"public"  # not the $app message


async def test_qos2_publish_completes_after_its_pubcomp_is_lost(target: Target) -> None:
    """4.3.3: a PUBREL the broker no longer holds still gets PUBCOMP, so a resumed QoS 2 publish
    completes, and the message is delivered once."""
    async with (
        client(target, "qos2-sub") as sub,
        MqttProxy(target.address, cut_before=lambda p: p[0] == 0x70).running() as proxy,
    ):
        await sub.subscribe("q2/#", qos=2)
        publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="qos2-pub", clean_session=False)
        publisher.reconnect_delay_set(min_delay=1, max_delay=1)
        publisher.connect(*proxy.address)
        publisher.loop_start()
        try:
            sent = publisher.publish("q2/x", b"exactly once", qos=2)
            await asyncio.wait_for(proxy.cut.wait(), WAIT)  # the first PUBCOMP was lost with the link
            await asyncio.to_thread(sent.wait_for_publish, 2 * WAIT)  # paho resends PUBREL after reconnecting
            assert sent.is_published()
            assert (await next_message(sub)).payload == b"exactly once"
            await asyncio.to_thread(publisher.publish("q2/marker", b"after", qos=2).wait_for_publish, WAIT)
            assert (await next_message(sub)).payload == b"after"  # no second copy in between
        finally:
            publisher.disconnect()
            publisher.loop_stop()


async def test_mqtt31_clients_are_admitted(target: Target) -> None:
    """MQTT 3.1 ("MQIsdp", level 3) clients connect, with client ids over 23 bytes, and get messages."""
    client_id = "an-mqtt-3.1-device-with-a-long-client-id"
    async with RawClient.open(target.address) as old, client(target, "modern") as modern:
        assert await old.connack(encode_connect(client_id, protocol_name="MQIsdp", level=3)) == (0, 0)
        await old.send(encode_subscribe(1, ("legacy/#", 1)))
        assert (await old.read_packet())[0] == 0x90  # SUBACK
        await modern.publish("legacy/x", b"to 3.1", qos=1)
        first, body = await old.read_packet()
        assert first >> 4 == 3
        assert body.endswith(b"to 3.1")


async def test_mqtt31_needs_a_client_id(target: Target) -> None:
    """MQTT 3.1 has no server-assigned client ids: an empty one gets CONNACK 2 (identifier rejected)."""
    async with RawClient.open(target.address) as old:
        assert await old.connack(encode_connect("", protocol_name="MQIsdp", level=3)) == (0, 2)
