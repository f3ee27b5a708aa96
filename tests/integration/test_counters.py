"""req 2 counters move exactly as spec section 2 says, with real MQTT clients."""

from __future__ import annotations

import functools

import aiomqtt
import httpx
import pytest

from broker import BrokerState, EdgeBroker
from broker.mqtt.encoding import (
    DISCONNECT,
    encode_connect,
    encode_pubcomp,
    encode_publish,
    encode_pubrec,
    encode_pubrel,
    encode_subscribe,
)
from tests.helpers import mqtt_client, next_message, v1, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


async def test_publish_without_subscriber_is_dropped(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A publish nobody subscribes to: message_in +1, message_drop +1, message_out unchanged."""
    async with mqtt_client(broker, "pub") as pub:
        await pub.publish("nobody/listens", b"x")
        await wait_state(broker, lambda s: s.stats().message_in == 1)
    assert await v1(api, 2) == {"client_size": 0, "message_in": 1, "message_out": 0, "message_drop": 1}


async def test_overlapping_filters_count_twice(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A client holding two matching filters: message_out +2 and its message_receive +2."""
    async with mqtt_client(broker, "sub") as sub, mqtt_client(broker, "pub") as pub:
        await sub.subscribe([("t/#", 1), ("t/+", 0)])
        await pub.publish("t/x", b"hello")
        first, second = await next_message(sub), await next_message(sub)
        assert first.payload == second.payload == b"hello"
        stats = await v1(api, 2)
        clients = {c["client_id"]: c for c in await v1(api, 5)}
    assert stats == {"client_size": 1, "message_in": 1, "message_out": 2, "message_drop": 0}
    assert clients["sub"]["message_receive"] == 2
    assert clients["pub"]["message_receive"] == 0


async def test_will_on_abnormal_disconnect_counts_in(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A will sent on an abrupt disconnect: message_in +1 and delivered to its subscriber."""
    async with mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with RawClient.open(broker.mqtt_address) as raw:
            assert await raw.connack(encode_connect("dying", will=("wills/dying", b"gone", 0, False))) == (0, 0)
            raw.abort()
        will = await next_message(watcher)
        assert (str(will.topic), will.payload) == ("wills/dying", b"gone")
    stats = await v1(api, 2)
    assert (stats["message_in"], stats["message_out"], stats["message_drop"]) == (1, 1, 0)


async def test_no_will_after_disconnect_packet(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A client that sends DISCONNECT has its will discarded (MQTT-3.1.2-10): nothing counted."""
    will = aiomqtt.Will("wills/polite", b"gone")
    async with mqtt_client(broker, "polite", will=will):
        pass
    await wait_state(broker, lambda s: s.client("polite") is None)
    assert (await v1(api, 2))["message_in"] == 0


async def test_qos0_for_offline_session_is_routed_and_dropped(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """QoS 0 routed to an offline persistent session counts in message_out and message_drop."""
    async with mqtt_client(broker, "sleeper", clean_session=False) as sleeper:
        await sleeper.subscribe("s/#", qos=1)
    await wait_state(broker, lambda s: (c := s.client("sleeper")) is not None and not c.connected)
    async with mqtt_client(broker, "pub") as pub:
        await pub.publish("s/a", b"q0", qos=0)
        await pub.publish("s/b", b"q1", qos=1)
        await wait_state(broker, lambda s: s.stats().message_in == 2)
    assert await v1(api, 2) == {"client_size": 1, "message_in": 2, "message_out": 2, "message_drop": 1}
    async with mqtt_client(broker, "sleeper", clean_session=False) as sleeper:
        queued = await next_message(sleeper)
        assert (str(queued.topic), queued.payload, queued.qos, queued.retain) == ("s/b", b"q1", 1, False)


async def test_raw_publish_counts_once_per_message(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """QoS 0, 1 and 2 publishes each count once in message_in."""
    async with RawClient.open(broker.mqtt_address) as raw:
        await raw.connack(encode_connect("raw"))
        await raw.send(encode_publish("r/0", b"a", qos=0))
        await raw.send(encode_publish("r/1", b"b", qos=1, packet_id=1))
        assert (await raw.read_packet())[0] == 0x40  # PUBACK
        await raw.send(encode_publish("r/2", b"c", qos=2, packet_id=2))
        assert (await raw.read_packet())[0] == 0x50  # PUBREC
        await raw.send(encode_pubrel(2))
        assert (await raw.read_packet())[0] == 0x70  # PUBCOMP
        await wait_state(broker, lambda s: s.stats().message_in == 3)
    assert (await v1(api, 2))["message_in"] == 3


async def test_publish_to_sys_is_acknowledged_and_dropped(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A client's QoS 1 PUBLISH to $SYS/... is acknowledged, never delivered, and counted as a drop."""
    async with mqtt_client(broker, "sys-sub") as sub, mqtt_client(broker, "forger") as forger:
        await sub.subscribe([("$SYS/#", 0), ("after/#", 0)])
        await forger.publish("$SYS/broker/uptime", b"forged", qos=1, retain=True)  # returns on PUBACK
        await forger.publish("after/x", b"marker")
        assert (await next_message(sub)).payload == b"marker"  # the $SYS message never came
    stats = await v1(api, 2)
    assert (stats["message_in"], stats["message_out"], stats["message_drop"]) == (2, 1, 1)
    assert broker.retained_messages() == []


def _gone_after(client_id: str, messages_in: int, state: BrokerState) -> bool:
    """Whether ``client_id`` has gone and the broker has received ``messages_in`` messages."""
    return state.client(client_id) is None and state.stats().message_in == messages_in


async def test_qos2_delivery_then_disconnect_is_not_dropped(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A QoS 2 copy completed by PUBCOMP just before DISCONNECT counts as delivered, never as dropped."""
    async with mqtt_client(broker, "pub") as pub:
        for round_ in range(10):  # the race took 9 rounds in 10 before
            async with RawClient.open(broker.mqtt_address) as sub:
                assert await sub.connack(encode_connect("q2-sub")) == (0, 0)
                await sub.send(encode_subscribe(1, ("q2/t", 2)))
                assert (await sub.read_packet())[0] == 0x90  # SUBACK
                await pub.publish("q2/t", b"x", qos=2)
                first, body = await sub.read_packet()
                assert first >> 4 == 3
                packet_id = int.from_bytes(body[2 + int.from_bytes(body[:2], "big") :][:2], "big")
                await sub.send(encode_pubrec(packet_id))
                assert await sub.read_packet() == (0x62, packet_id.to_bytes(2, "big"))  # PUBREL
                await sub.send(encode_pubcomp(packet_id) + DISCONNECT)  # together
                assert await sub.closed_by_peer()
            await wait_state(broker, functools.partial(_gone_after, "q2-sub", round_ + 1))
    assert (await v1(api, 2))["message_drop"] == 0
