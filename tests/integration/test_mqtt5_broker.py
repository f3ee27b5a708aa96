"""MQTT 5 clients on edgemq's own machinery: the server's reasons for closing, the ACL's SUBACK
code, session expiry and will delay on the broker's clock, the store, websockets, counters and
the hand-over of a leaving shared member's copies (also for 3.1.1 clients)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from broker.mqtt.encoding import encode_connect, encode_subscribe
from broker.testing.clock import ManualClock
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt5_packets import DISCONNECT, PUBLISH, SUBACK, Will, ack, connected, options, props, publish
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

NEVER = 0xFFFFFFFF
PUBACK_KIND = 4


async def test_a_kicked_client_is_told_0x98() -> None:
    """3.14.2.1: a client the admin kicks gets DISCONNECT 0x98 (administrative action) first."""
    async with running_broker() as broker, connected(broker.mqtt_address, "kicked") as client:
        assert await broker.kick("kicked")
        assert await client.refused_with(0x98) == 0x98


async def test_a_taken_over_client_is_told_0x8e() -> None:
    """MQTT-3.1.4-3: the older connection of a client id connecting again gets DISCONNECT 0x8E."""
    async with (
        running_broker() as broker,
        connected(broker.mqtt_address, "twin") as first,
        connected(broker.mqtt_address, "twin"),
    ):
        assert await first.refused_with(0x8E) == 0x8E


async def test_a_filter_the_acl_refuses_gets_0x87() -> None:
    """3.9.3: a filter refused by auth.acl gets SUBACK 0x87 (not authorized); others are granted."""
    rules = [{"permit": "deny", "clientid": "#", "action": "subscribe", "topics": ["secret/#"]}]
    settings = ephemeral_settings(auth={"no_match": "allow", "acl": {"rules": rules}})
    async with running_broker(settings) as broker, connected(broker.mqtt_address, "nosy") as client:
        suback = await client.subscribe(("secret/#", options(1)), ("open/#", options(1)))
        assert suback.reasons == [0x87, 0x01]


async def test_a_session_ends_when_its_expiry_interval_runs_out() -> None:
    """3.1.2.11.2: a session kept 60 s after its connection is gone at 60 s, not before."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker:
        async with connected(broker.mqtt_address, "brief", properties=props(session_expiry_interval=60)) as client:
            await client.subscribe(("brief/#", options(1)))
            await client.send(b"\xe0\x00")
        await wait_state(broker, lambda state: state.counts().connections == 0)
        clock.advance(59)
        assert broker.state.stats().client_size == 1
        clock.advance(2)
        await wait_state(broker, lambda state: state.stats().client_size == 0)


async def test_a_delayed_will_waits_for_its_delay() -> None:
    """3.1.3.2.2: a will with a 30 s delay is published at 30 s after an abnormal end."""
    clock = ManualClock()
    will = Will("wills/late", b"gone", properties=props(will_delay_interval=30))
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        expiry = props(session_expiry_interval=300)
        async with connected(broker.mqtt_address, "late", will=will, properties=expiry) as client:
            client.abort()
        await wait_state(broker, lambda state: state.counts().connections == 1)
        clock.advance(29)
        with_watcher = asyncio.ensure_future(next_message(watcher))
        await asyncio.sleep(0)
        assert not with_watcher.done()
        clock.advance(2)
        assert (await with_watcher).payload == b"gone"


async def test_a_delayed_will_is_not_published_when_the_client_returns_in_time() -> None:
    """MQTT-3.1.3-9: a client that connects again before its will delay ends has no will published."""
    clock = ManualClock()
    will = Will("wills/back", b"gone", properties=props(will_delay_interval=30))
    expiry = props(session_expiry_interval=300)
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with connected(broker.mqtt_address, "back", will=will, properties=expiry) as client:
            client.abort()
        await wait_state(broker, lambda state: state.counts().connections == 1)
        async with connected(broker.mqtt_address, "back", clean_start=False, properties=expiry):
            clock.advance(60)
            await watcher.publish("wills/marker", b"marker")
            assert (await next_message(watcher)).payload == b"marker"  # and not the will before it


async def test_an_expired_queued_message_is_dropped_and_counted() -> None:
    """3.3.2.3.3: a queued copy past its Message Expiry Interval is not delivered; message_drop counts it."""
    expiry = props(session_expiry_interval=300)
    async with running_broker() as broker:
        async with connected(broker.mqtt_address, "away", properties=expiry) as away:
            await away.subscribe(("news/#", options(1)))
            await away.send(b"\xe0\x00")
        await wait_state(broker, lambda state: state.counts().connections == 0)
        async with connected(broker.mqtt_address, "pub") as pub:
            await pub.publish_acked("news/a", b"stale", properties=props(message_expiry_interval=1))
            await pub.publish_acked("news/b", b"fresh", packet_id=2)
        dropped = broker.state.stats().message_drop
        await asyncio.sleep(1.1)  # the stale message's one second must pass
        async with connected(broker.mqtt_address, "away", clean_start=False, properties=expiry) as away:
            message = await away.expect(PUBLISH)
            assert message.payload == b"fresh"
        assert broker.state.stats().message_drop == dropped + 1


async def test_a_v5_session_and_its_queue_survive_a_restart(tmp_path: Path) -> None:
    """A persistent MQTT 5 session's subscription and queued QoS 1 message outlive a restart."""
    settings = ephemeral_settings(persistence={"enable": True, "path": str(tmp_path / "edgemq.db")})
    forever = props(session_expiry_interval=NEVER)
    async with running_broker(settings) as broker:
        async with connected(broker.mqtt_address, "durable", properties=forever) as client:
            await client.subscribe(("jobs/#", options(1)))
            await client.send(b"\xe0\x00")
        await wait_state(broker, lambda state: state.counts().connections == 0)
        async with connected(broker.mqtt_address, "pub") as pub:
            await pub.publish_acked("jobs/1", b"kept", properties=props(content_type="text/plain"))
    async with (
        running_broker(settings) as broker,
        connected(broker.mqtt_address, "durable", clean_start=False, properties=forever) as client,
    ):
        message = await client.expect(PUBLISH)
        assert (message.topic, message.payload, message.qos) == ("jobs/1", b"kept", 1)
        assert message.properties.get("content_type") == "text/plain"
        await client.send(ack(PUBACK_KIND, message.packet_id))


async def test_a_retained_messages_properties_survive_a_restart(tmp_path: Path) -> None:
    """A retained message keeps its MQTT 5 properties (user properties, correlation data) across a restart."""
    settings = ephemeral_settings(persistence={"enable": True, "path": str(tmp_path / "edgemq.db")})
    sent = props([("k", "v")], correlation_data=b"\x01\x02")
    async with running_broker(settings) as broker, connected(broker.mqtt_address, "pub") as pub:
        await pub.publish_acked("state/door", b"open", retain=True, properties=sent)
    async with running_broker(settings) as broker, connected(broker.mqtt_address, "late") as late:
        await late.subscribe(("state/#", options(1)))
        message = await late.expect(PUBLISH)
        assert (message.payload, message.retain) == (b"open", True)
        assert message.properties.user_properties == [("k", "v")]
        assert message.properties.get("correlation_data") == b"\x01\x02"


async def test_a_v5_client_over_websockets_publishes_and_receives() -> None:
    """An MQTT 5 client on the websocket listener gets its CONNACK, SUBACK and messages as v5 packets."""
    settings = ephemeral_settings(listeners={"ws": {"bind": "127.0.0.1:0/mqtt"}})
    async with running_broker(settings) as broker:
        host, port = broker.mqtt_addresses["ws"]
        async with aiomqtt.Client(
            host, port, identifier="ws5", transport="websockets", websocket_path="/mqtt",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:  # fmt: skip
            await client.subscribe("ws/#", qos=1)
            await client.publish("ws/t", b"over websockets", qos=1)
            message = await next_message(client)
            assert (str(message.topic), message.payload, message.qos) == ("ws/t", b"over websockets", 1)


async def test_a_leaving_3_1_1_members_copies_go_to_another_member() -> None:
    """4.8.2: the QoS 1 copies a clean-session 3.1.1 member leaves unacknowledged go to another member."""
    async with running_broker() as broker, mqtt_client(broker, "stayer") as stayer:
        await stayer.subscribe("$share/g/work/#", qos=1)
        async with RawClient.open(broker.mqtt_address) as leaver:
            assert await leaver.connack(encode_connect("leaver")) == (0, 0)
            await leaver.send(encode_subscribe(1, ("$share/g/work/#", 1)))
            assert (await leaver.read_packet())[0] >> 4 == SUBACK
            async with connected(broker.mqtt_address, "pub") as pub:
                for n in range(4):
                    await pub.send(publish("work/x", str(n).encode(), qos=1, packet_id=n + 1))
                for _ in range(4):
                    await pub.expect(PUBACK_KIND)
            kept = []
            for _ in range(2):  # its turns, never acknowledged
                first, body = await leaver.read_packet()
                assert first >> 4 == PUBLISH
                kept.append(body[2 + 6 + 2 :])  # topic "work/x" and a packet id before the payload
            leaver.abort()
        got = {(await next_message(stayer)).payload for _ in range(4)}
        assert set(kept) <= got
        assert len(got) == 4


async def test_the_server_closing_tells_v5_clients_0x8b() -> None:
    """3.14.2.1: a broker shutting down sends its MQTT 5 clients DISCONNECT 0x8B first."""
    async with running_broker() as broker, connected(broker.mqtt_address, "stays") as client:
        await broker.stop()
        received = await client.next()
        assert (received.kind, received.reason) == (DISCONNECT, 0x8B)
