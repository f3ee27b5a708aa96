"""MQTT 5 bridges (proto_ver = 5) to a real mosquitto: the link, properties both ways, the upstream's limits.

Most tests offer messages to the broker's BridgeSet directly, as the router does for each routed
message; two go through the router, from and to paho MQTTv5 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from broker import EdgeBroker
from broker.bridges.bridge_set import BridgeSet
from broker.mqtt.encoding import encode_connect, encode_publish, encode_publish_v5, encode_subscribe
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties, encode_properties
from broker.testing.helpers import wait_until
from tests.helpers import WAIT, running_broker
from tests.integration.bridge_runs import watching
from tests.integration.test_bridges import SUBACK, bridge_connected, bridged, upstream_subscriber
from tests.integration.test_persistence import publish_acknowledged, publish_fields
from tests.link_proxy import LinkProxy
from tests.mqtt_packets import RawClient
from tests.upstream import Upstream, mosquitto_upstream

pytestmark = pytest.mark.anyio

CARRIED = Properties({"content_type": "text/plain", "response_topic": "re/1"}, [("site", "north"), ("n", "1")])
"""Properties a publisher sets and the bridge must carry unchanged (3.3.2.3)."""


def carried(now: float | None = None) -> MessageProperties:
    message = MessageProperties.from_properties(CARRIED, time.time() if now is None else now)
    assert message is not None
    return message


def v5(address: tuple[str, int], tmp_path: Path | None = None, **bridge: Any) -> Any:
    """Settings with one MQTT 5 bridge ``up`` (local up/# -> edge/#, upstream cmd/# -> commands/#)."""
    return bridged(address, tmp_path, proto_ver=5, **bridge)


def bridges_of(broker: EdgeBroker) -> BridgeSet:
    running = broker._mqtt.bridges
    assert running is not None
    return running


@contextlib.asynccontextmanager
async def paho_v5_subscriber(
    upstream: Upstream | tuple[str, int], topic_filter: str, client_id: str = "paho-v5"
) -> AsyncIterator[queue.Queue[paho.MQTTMessage]]:
    """A paho MQTT 5 client (on its own thread; the event loop waits for it without blocking, as
    edgemq may be the server) subscribed to ``topic_filter`` on the upstream (or at an address);
    its messages, queued."""
    address = upstream.address if isinstance(upstream, Upstream) else upstream
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
    answers: queue.Queue[str] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, code, _p: answers.put(str(code))
    client.on_subscribe = lambda _c, _u, _m, codes, _p: answers.put(str(codes[0]))
    client.on_message = lambda _c, _u, message: messages.put(message)
    client.connect(*address)
    client.loop_start()
    try:
        assert await asyncio.to_thread(answers.get, timeout=WAIT) == "Success"
        client.subscribe(topic_filter, qos=1)
        assert await asyncio.to_thread(answers.get, timeout=WAIT) == "Granted QoS 1"
        yield messages
    finally:
        client.disconnect()
        client.loop_stop()


async def next_message(messages: queue.Queue[paho.MQTTMessage]) -> paho.MQTTMessage:
    return await asyncio.to_thread(messages.get, timeout=10)


def user_properties(message: paho.MQTTMessage) -> list[tuple[str, str]]:
    return list(getattr(message.properties, "UserProperty", []))


async def test_a_v5_bridge_connects_with_mqtt5_and_forwards_both_ways(tmp_path: Path) -> None:
    """proto_ver = 5: mosquitto sees an MQTT 5 client; messages go up and come down as on 3.1.1."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(v5(upstream.address)) as broker,
        RawClient.open(broker.mqtt_address) as device,
        RawClient.open(upstream.address) as operator,
    ):
        await bridge_connected(broker)
        assert "as edgemq-bridge-up (p5," in upstream.log  # mosquitto: "New client connected ... (p5, c0, k2)"
        assert await device.connack(encode_connect("device")) == (0, 0)
        await device.send(encode_subscribe(1, ("commands/#", 1)))
        assert (await device.read_packet())[0] >> 4 == SUBACK
        await publish_acknowledged(device, "up/temp", b"21.5", 1, 2)
        assert await cloud.next() == ("edge/temp", b"21.5")
        assert await operator.connack(encode_connect("operator")) == (0, 0)
        await operator.send(encode_publish("cmd/reboot", b"now", qos=1, packet_id=1))
        first, body = await device.read_packet(timeout=10)
        assert publish_fields(body, first)[:2] == ("commands/reboot", b"now")


async def test_offered_properties_reach_an_mqtt5_subscriber_on_the_upstream(tmp_path: Path) -> None:
    """A message offered with properties arrives upstream with its content type, response topic and user properties."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(v5(upstream.address)) as broker,
    ):
        await bridge_connected(broker)
        async with paho_v5_subscriber(upstream, "edge/#") as messages:
            bridges_of(broker).offer("up/p", b"x", 1, False, None, carried())
            message = await next_message(messages)
    assert (message.topic, message.payload) == ("edge/p", b"x")
    assert message.properties.ContentType == "text/plain"  # type: ignore[union-attr]
    assert message.properties.ResponseTopic == "re/1"  # type: ignore[union-attr]
    assert user_properties(message) == [("site", "north"), ("n", "1")]


async def test_properties_are_not_sent_on_a_311_bridge(tmp_path: Path) -> None:
    """A proto_ver = 4 bridge forwards the message without the properties it was offered with."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(bridged(upstream.address)) as broker,
    ):
        await bridge_connected(broker)
        async with paho_v5_subscriber(upstream, "edge/#") as messages:
            bridges_of(broker).offer("up/p", b"x", 1, False, None, carried())
            message = await next_message(messages)
    assert message.payload == b"x"
    assert user_properties(message) == []
    assert not hasattr(message.properties, "ContentType")


async def test_properties_from_a_v5_upstream_reach_the_local_publish(tmp_path: Path) -> None:
    """A message published upstream with properties is handed to publish_from with them."""
    received: asyncio.Queue[tuple[str, MessageProperties | None]] = asyncio.Queue()

    async def publish_from(
        topic: str, payload: bytes, qos: int, retain: bool, origin: str, *, properties: MessageProperties | None = None
    ) -> None:
        received.put_nowait((topic, properties))

    changed = asyncio.Event()
    async with mosquitto_upstream(tmp_path) as upstream, RawClient.open(upstream.address) as operator:
        bridges = BridgeSet(v5(upstream.address).bridges.mqtt, publish_from, None, {}, changed.set)
        try:
            bridges.start()
            async with asyncio.timeout(WAIT):
                while bridges.stats()[0].state != "connected":
                    changed.clear()
                    await changed.wait()
            assert await operator.connack(encode_connect("operator", level=5)) == (0, 0)
            block = encode_properties(CARRIED)
            await operator.send(encode_publish_v5("cmd/a", b"go", block, qos=1, packet_id=1))
            topic, properties = await asyncio.wait_for(received.get(), WAIT)
        finally:
            await bridges.stop()
    assert topic == "commands/a"
    assert properties == MessageProperties(carried().forwarded, None)


async def test_the_upstream_receive_maximum_is_honoured(tmp_path: Path) -> None:
    """With mosquitto's Receive Maximum of 2 and max_inflight 256, 30 QoS 2 messages all arrive, none refused."""
    # mosquitto answers a PUBREC 0x97 (quota exceeded) to a QoS 2 PUBLISH beyond its Receive Maximum
    async with (
        mosquitto_upstream(tmp_path, config=["max_inflight_messages 2"]) as upstream,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(v5(upstream.address, forwards=[{"local_topic": "up/#", "remote_topic": "edge/#"}])) as broker,
    ):
        await bridge_connected(broker)
        bridges = bridges_of(broker)
        for n in range(30):  # in one loop turn: the bridge could send them all at once
            bridges.offer("up/seq", b"%d" % n, 2, False, None)
        await cloud.until(b"29")
        await wait_until(broker.state, lambda s: s.bridges()[0].forwarded == 30, WAIT)
        (stats,) = bridges.stats()
    assert [int(p) for p in cloud.payloads] == list(range(30))
    assert stats.dropped == 0


@contextlib.asynccontextmanager
async def denying_upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    """A mosquitto where anonymous clients may publish only under edge/ok/ (and read everything)."""
    acl = tmp_path / "acl"
    acl.write_text("topic write edge/ok/#\ntopic read #\n")
    async with mosquitto_upstream(tmp_path, config=[f"acl_file {acl}"]) as upstream:
        yield upstream


async def test_a_message_the_upstream_refuses_is_dropped_counted_and_logged_once(tmp_path: Path) -> None:
    """PUBACK 0x87 (not authorized): the message is dropped and counted, not resent, one WARNING."""
    async with (
        denying_upstream(tmp_path) as upstream,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(v5(upstream.address)) as broker,
    ):
        await bridge_connected(broker)
        bridges = bridges_of(broker)
        with watching() as log:
            bridges.offer("up/denied", b"no", 1, False, None)
            bridges.offer("up/denied", b"no again", 1, False, None)
            bridges.offer("up/ok/1", b"yes", 1, False, None)
            assert await cloud.next() == ("edge/ok/1", b"yes")
            await wait_until(broker.state, lambda s: s.bridges()[0].forwarded == 1, WAIT)
            (stats,) = bridges.stats()
        refusals = [m for m in log.messages if "refused" in m]
    assert (stats.forwarded, stats.dropped, stats.queued, stats.in_flight) == (1, 2, 0, 0)
    assert len(refusals) == 1
    assert refusals[0].startswith("WARNING")
    assert "0x87 not authorized" in refusals[0]


async def test_a_message_over_the_upstream_maximum_packet_size_is_dropped_and_counted(tmp_path: Path) -> None:
    """mosquitto's Maximum Packet Size of 200: a 500-byte message is dropped and counted, the next one goes."""
    async with (
        mosquitto_upstream(tmp_path, config=["max_packet_size 200"]) as upstream,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(v5(upstream.address)) as broker,
    ):
        await bridge_connected(broker)
        bridges = bridges_of(broker)
        bridges.offer("up/big", b"x" * 500, 1, False, None)
        bridges.offer("up/small", b"fits", 1, False, None)
        assert await cloud.next() == ("edge/small", b"fits")
        await wait_until(broker.state, lambda s: s.bridges()[0].forwarded == 1, WAIT)
        (stats,) = bridges.stats()
    assert (stats.forwarded, stats.dropped) == (1, 1)


async def test_a_queued_v5_message_keeps_its_properties_across_a_restart(tmp_path: Path) -> None:
    """With persistence on, a v5 message queued for a refused link goes upstream after a restart with its properties."""
    async with mosquitto_upstream(tmp_path) as upstream, LinkProxy(upstream.address).running() as proxy:
        proxy.refuse()
        async with running_broker(v5(proxy.address, tmp_path)) as broker:
            bridges_of(broker).offer("up/kept", b"k", 1, False, None, carried())  # its row: committed at the stop
        proxy.restore()
        async with (
            paho_v5_subscriber(upstream, "edge/#") as messages,
            running_broker(v5(proxy.address, tmp_path)),
        ):
            message = await next_message(messages)
    assert (message.topic, message.payload) == ("edge/kept", b"k")
    assert message.properties.ContentType == "text/plain"  # type: ignore[union-attr]
    assert user_properties(message) == [("site", "north"), ("n", "1")]


async def test_the_upstream_maximum_qos_and_retain_available_are_honoured(tmp_path: Path) -> None:
    """mosquitto with max_qos 1 and no retained messages: a retained QoS 2 message goes as QoS 1, not retained."""
    # mosquitto disconnects a client that sends QoS 2 (0x9B) or a retained message (0x9A) there
    forward_qos2 = [{"local_topic": "up/#", "remote_topic": "edge/#", "qos": 2}]
    async with (
        mosquitto_upstream(tmp_path, config=["max_qos 1", "retain_available false"]) as upstream,
        running_broker(v5(upstream.address, forwards=forward_qos2)) as broker,
    ):
        await bridge_connected(broker)
        async with paho_v5_subscriber(upstream, "edge/#") as messages:
            bridges_of(broker).offer("up/r", b"kept?", 2, True, None)
            message = await next_message(messages)
        await wait_until(broker.state, lambda s: s.bridges()[0].forwarded == 1, WAIT)
        (stats,) = bridges_of(broker).stats()
    assert (message.topic, message.payload, message.qos, message.retain) == ("edge/r", b"kept?", 1, False)
    assert (stats.state, stats.dropped, stats.resent) == ("connected", 0, 0)


async def test_a_v5_publishers_properties_reach_the_upstream_through_the_router(tmp_path: Path) -> None:
    """A paho MQTTv5 client publishing to edgemq with properties: the upstream subscriber gets them."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(v5(upstream.address)) as broker,
    ):
        await bridge_connected(broker)
        async with paho_v5_subscriber(upstream, "edge/#") as messages:
            publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="pub-v5", protocol=paho.MQTTv5)
            publisher.connect(*broker.mqtt_address)
            publisher.loop_start()
            try:
                sent = PahoProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                sent.ContentType = "text/plain"
                sent.UserProperty = ("site", "north")
                published = publisher.publish("up/p", b"x", qos=1, properties=sent)
                await asyncio.to_thread(published.wait_for_publish, WAIT)
                message = await next_message(messages)
            finally:
                publisher.disconnect()
                publisher.loop_stop()
    assert message.properties.ContentType == "text/plain"  # type: ignore[union-attr]
    assert user_properties(message) == [("site", "north")]


async def test_an_upstream_messages_properties_reach_a_local_v5_subscriber(tmp_path: Path) -> None:
    """A message published on mosquitto with properties reaches a paho MQTTv5 subscriber of edgemq with them."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(v5(upstream.address)) as broker,
        RawClient.open(upstream.address) as operator,
        paho_v5_subscriber(broker.mqtt_address, "commands/#", "local-v5") as messages,
    ):
        await bridge_connected(broker)
        assert await operator.connack(encode_connect("operator", level=5)) == (0, 0)
        await operator.send(encode_publish_v5("cmd/a", b"go", encode_properties(CARRIED), qos=1, packet_id=1))
        message = await next_message(messages)
    assert (message.topic, message.payload) == ("commands/a", b"go")
    assert message.properties.ContentType == "text/plain"  # type: ignore[union-attr]
    assert user_properties(message) == [("site", "north"), ("n", "1")]


async def test_what_the_bridge_forwards_is_not_echoed_back_by_its_own_subscription(tmp_path: Path) -> None:
    """No Local: a forward into a topic the bridge also subscribes to upstream does not come back down."""
    loop: dict[str, Any] = {
        "forwards": [{"local_topic": "up/#", "remote_topic": "echo/#", "qos": 1}],
        "subscription": [{"remote_topic": "echo/#", "local_topic": "down/#", "qos": 1}],
    }
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        upstream_subscriber(upstream, "cloud", "echo/#") as cloud,
        running_broker(v5(upstream.address, **loop)) as broker,
        RawClient.open(broker.mqtt_address) as device,
        RawClient.open(upstream.address) as operator,
    ):
        assert await device.connack(encode_connect("device")) == (0, 0)
        await device.send(encode_subscribe(1, ("down/#", 1)))
        assert (await device.read_packet())[0] >> 4 == SUBACK
        await bridge_connected(broker)
        bridges_of(broker).offer("up/a", b"mine", 1, False, None)
        assert await cloud.next() == ("echo/a", b"mine")  # upstream now, before the marker
        assert await operator.connack(encode_connect("operator")) == (0, 0)
        await operator.send(encode_publish("echo/b", b"marker", qos=1, packet_id=1))
        came_down: list[bytes] = []
        while b"marker" not in came_down:  # in publish order: an echo of "mine" would come first
            first, body = await device.read_packet(timeout=10)
            came_down.append(publish_fields(body, first)[1])
    assert came_down == [b"marker"]
