"""Session handling at CONNECT: authentication first, takeover, session present, wills."""

from __future__ import annotations

import logging

import httpx
import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect, encode_puback, encode_subscribe
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, v1, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

CLOSED_AUTH = {"allow_anonymous": False, "password": {"victim": "pw", "helper": "pw"}}


async def test_refused_clean_connect_leaves_the_live_session_alone() -> None:
    """A refused CONNECT with clean session does not delete the live session of that client id (MQTT-3.1.4)."""
    async with (
        running_broker(ephemeral_settings(auth=CLOSED_AUTH)) as broker,
        mqtt_client(broker, "victim", username="victim", password="pw") as victim,
    ):
        await victim.subscribe("v/#")
        async with RawClient.open(broker.mqtt_address) as attacker:
            assert await attacker.connack(encode_connect("victim", clean_session=True)) == (0, 5)
        assert broker.stats().client_size == 1
        async with mqtt_client(broker, "pub", username="helper", password="pw") as pub:
            await pub.publish("v/1", b"still here")
        assert (await next_message(victim)).payload == b"still here"


async def test_refused_connect_does_not_plant_a_will() -> None:
    """A refused CONNECT carrying a will does not change the live session's will."""
    async with (
        running_broker(ephemeral_settings(auth=CLOSED_AUTH)) as broker,
        mqtt_client(broker, "watcher", username="helper", password="pw") as watcher,
    ):
        await watcher.subscribe("wills/#")
        async with RawClient.open(broker.mqtt_address) as victim:
            assert await victim.connack(
                encode_connect("victim", clean_session=False, username="victim", password="pw")
            ) == (0, 0)
            async with RawClient.open(broker.mqtt_address) as attacker:
                planted = encode_connect("victim", clean_session=False, will=("wills/victim", b"forged", 0, False))
                assert await attacker.connack(planted) == (0, 5)
            victim.abort()
        await wait_state(broker, lambda s: (c := s.client("victim")) is not None and not c.connected)
        assert broker.stats().message_in == 0


async def test_takeover_publishes_the_old_connections_will(broker: EdgeBroker) -> None:
    """When a persistent session is taken over, the will of the closed connection is published."""
    async with mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with RawClient.open(broker.mqtt_address) as first, RawClient.open(broker.mqtt_address) as second:
            assert await first.connack(
                encode_connect("twin", clean_session=False, will=("wills/twin", b"old", 0, False))
            ) == (0, 0)
            assert await second.connack(
                encode_connect("twin", clean_session=False, will=("wills/twin", b"new", 0, False))
            ) == (1, 0)
            assert await first.closed_by_peer()
            assert (await next_message(watcher)).payload == b"old"


async def test_takeover_interrupts_the_old_connections_reading(
    broker: EdgeBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A take-over ends the old connection at once (its reading stops), not by cancelling it, and says so."""
    caplog.set_level(logging.INFO, logger="edgemq.mqtt")
    async with RawClient.open(broker.mqtt_address) as first, RawClient.open(broker.mqtt_address) as second:
        assert await first.connack(encode_connect("twin")) == (0, 0)
        assert await second.connack(encode_connect("twin")) == (0, 0)
        assert await first.closed_by_peer()
    prefix = "client disconnected: client_id=twin "
    ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
    assert ends[0] == prefix + "reason=taken over by a new connection"  # the first connection's end


async def test_log_lines_say_what_happened(broker: EdgeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """The connect line shows the keep-alive as sent; a kick and an expired keep-alive are logged as such."""
    caplog.set_level(logging.INFO, logger="edgemq.mqtt")
    async with RawClient.open(broker.mqtt_address) as kicked, RawClient.open(broker.mqtt_address) as silent:
        assert await kicked.connack(encode_connect("kicked", keep_alive=60)) == (0, 0)
        assert await broker.kick("kicked")
        assert await kicked.closed_by_peer()
        assert await silent.connack(encode_connect("silent", keep_alive=1)) == (0, 0)
        assert await silent.closed_by_peer()
    lines = [r.getMessage() for r in caplog.records]
    connected = [line for line in lines if line.startswith("client connected: client_id=kicked ")]
    assert connected[0].endswith(" keepalive=60")
    assert "client disconnected: client_id=kicked reason=kicked" in lines
    assert "client disconnected: client_id=silent reason=keep-alive expired" in lines


async def test_session_present_flag(broker: EdgeBroker) -> None:
    """Session present is 1 when a persistent session resumes and 0 after a clean session discarded it."""
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("p", clean_session=False)) == (0, 0)
        await raw.send(encode_subscribe(1, ("p/#", 1)))
        await raw.read_packet()
    await wait_state(broker, lambda s: (c := s.client("p")) is not None and not c.connected)
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("p", clean_session=False)) == (1, 0)
    await wait_state(broker, lambda s: (c := s.client("p")) is not None and not c.connected)
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("p", clean_session=True)) == (0, 0)
    await wait_state(broker, lambda s: s.client("p") is None)
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("p", clean_session=False)) == (0, 0)
    assert broker.state.subscriptions() == []


@pytest.mark.parametrize("will_topic", ["wills/#", "wills/+/x", "$SYS/fake", ""])
async def test_invalid_will_topic_is_refused(broker: EdgeBroker, api: httpx.AsyncClient, will_topic: str) -> None:
    """A CONNECT whose will topic is not a valid topic name is closed without CONNACK (MQTT-3.1.3-10)."""
    async with RawClient.open(broker.mqtt_address) as raw:
        await raw.send(encode_connect("bad-will", will=(will_topic, b"x", 0, False)))
        assert await raw.closed_by_peer()
    assert await v1(api, 5) == []


async def test_anonymous_persistent_session_keeps_queued_messages(broker: EdgeBroker) -> None:
    """An anonymous client with clean session 0 gets its QoS 1 messages queued while offline."""
    async with mqtt_client(broker, "anon", clean_session=False) as anon:
        await anon.subscribe("a/#", qos=1)
    await wait_state(broker, lambda s: (c := s.client("anon")) is not None and not c.connected)
    async with mqtt_client(broker, "pub") as pub:
        await pub.publish("a/1", b"while away", qos=1)
    async with mqtt_client(broker, "anon", clean_session=False) as anon:
        assert (await next_message(anon)).payload == b"while away"


async def test_discarded_queue_counts_as_dropped(broker: EdgeBroker) -> None:
    """Messages queued for a session that a clean CONNECT discards count in message_drop."""
    async with mqtt_client(broker, "q", clean_session=False) as q:
        await q.subscribe("q/#", qos=1)
    await wait_state(broker, lambda s: (c := s.client("q")) is not None and not c.connected)
    async with mqtt_client(broker, "pub") as pub:
        await pub.publish("q/1", b"1", qos=1)
        await pub.publish("q/2", b"2", qos=1)
    async with mqtt_client(broker, "q", clean_session=True):
        pass
    assert broker.stats().message_drop == 2


async def test_offline_queue_is_delivered_once(broker: EdgeBroker) -> None:
    """Messages queued while offline arrive once each, without DUP, when the session resumes."""
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("q1", clean_session=False)) == (0, 0)
        await raw.send(encode_subscribe(1, ("o/#", 1)))
        await raw.read_packet()
    await wait_state(broker, lambda s: (c := s.client("q1")) is not None and not c.connected)
    for n in range(3):
        await broker.publish(f"o/{n}", b"m", qos=1)
    async with RawClient.open(broker.mqtt_address) as raw:
        assert await raw.connack(encode_connect("q1", clean_session=False)) == (1, 0)
        firsts = []
        for _ in range(3):
            first, body = await raw.read_packet()
            firsts.append(first)
            await raw.send(encode_puback(int.from_bytes(body[5:7], "big")))  # topic "o/N" is 3 bytes
        assert firsts == [0x32, 0x32, 0x32]
        with pytest.raises(TimeoutError):
            await raw.read_packet(timeout=0.3)  # nothing more: no second copy


async def test_protocol_level_is_reported(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """req 5 and v4 clients report each client's protocol: 3 (MQIsdp) for MQTT 3.1, 4 for 3.1.1."""
    async with RawClient.open(broker.mqtt_address) as old, RawClient.open(broker.mqtt_address) as new:
        assert await old.connack(encode_connect("old", protocol_name="MQIsdp", level=3)) == (0, 0)
        assert await new.connack(encode_connect("new")) == (0, 0)
        levels = {c["client_id"]: c["protocol"] for c in await v1(api, 5)}
        v4 = {c["client_id"]: (c["proto_name"], c["proto_ver"]) for c in (await api.get("/v4/clients")).json()["data"]}
    assert levels == {"old": 3, "new": 4}
    assert v4 == {"old": ("MQIsdp", 3), "new": ("MQTT", 4)}
