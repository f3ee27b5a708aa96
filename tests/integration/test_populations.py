"""Who appears in req 4, req 5 and req 13, and when they leave."""

from __future__ import annotations

import httpx
import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, v1, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


async def test_publisher_only_client_is_in_req5_not_req4(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A client without subscriptions is listed by req 5 but not by req 4 or client_size."""
    async with mqtt_client(broker, "only-pub", keepalive=42):
        clients = await v1(api, 5)
        assert await v1(api, 4) == []
        assert (await v1(api, 2))["client_size"] == 0
    assert clients == [
        {
            "client_id": "only-pub",
            "username": "",
            "keepalive": 42,
            "protocol": 4,
            "connect_status": 1,
            "message_receive": 0,
        }
    ]


async def test_subscriptions_in_order_with_granted_qos(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """req 4 lists each session's filters in subscription order with the granted QoS."""
    async with mqtt_client(broker, "s1") as s1:
        await s1.subscribe([("b/#", 2), ("a/+", 0)])
        await s1.subscribe("c", qos=1)
        assert await v1(api, 4) == [
            {
                "client_id": "s1",
                "subscriptions": [{"topic": "b/#", "qos": 2}, {"topic": "a/+", "qos": 0}, {"topic": "c", "qos": 1}],
            }
        ]


async def test_resubscribe_updates_granted_qos(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """Subscribing again to a filter replaces its QoS (MQTT-3.8.4-3)."""
    async with mqtt_client(broker, "s1") as s1:
        await s1.subscribe("t", qos=0)
        await s1.subscribe("t", qos=2)
        assert (await v1(api, 4))[0]["subscriptions"] == [{"topic": "t", "qos": 2}]


async def test_unsubscribed_client_leaves_req4(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """After UNSUBSCRIBE of its last filter a client leaves req 4 and client_size."""
    async with mqtt_client(broker, "s1") as s1:
        await s1.subscribe("t/1")
        assert (await v1(api, 2))["client_size"] == 1
        await s1.unsubscribe("t/1")
        assert await v1(api, 4) == []
        assert (await v1(api, 2))["client_size"] == 0
        assert [c["client_id"] for c in await v1(api, 5)] == ["s1"]


async def test_clean_session_leaves_on_disconnect(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A clean-session client leaves req 4 and req 5 as soon as it disconnects."""
    async with mqtt_client(broker, "brief") as brief:
        await brief.subscribe("x")
    await wait_state(broker, lambda s: s.client("brief") is None)
    assert await v1(api, 5) == []
    assert await v1(api, 4) == []


async def test_offline_persistent_session_is_listed(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """An offline persistent session stays in req 4 and shows connect_status 0 in req 5."""
    async with mqtt_client(broker, "keeper", clean_session=False) as keeper:
        await keeper.subscribe("k/#", qos=1)
    await wait_state(broker, lambda s: (c := s.client("keeper")) is not None and not c.connected)
    assert [c["connect_status"] for c in await v1(api, 5)] == [0]
    assert (await v1(api, 4))[0]["client_id"] == "keeper"
    assert (await v1(api, 2))["client_size"] == 1


async def test_refused_client_leaves_no_record() -> None:
    """A refused CONNECT gets return code 5 and appears in no listing."""
    async with running_broker(ephemeral_settings(auth={"allow_anonymous": False})) as broker:
        async with RawClient.open(broker.mqtt_address) as raw:
            assert await raw.connack(encode_connect("nobody")) == (0, 5)
            assert await raw.closed_by_peer()
        async with mqtt_client(broker, "named", username="alice"):
            assert [c.info.client_id for c in broker.state.clients()] == ["named"]


async def test_client_id_takeover_closes_the_older_connection(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A second CONNECT with a live client id closes the first connection (MQTT-3.1.4-2)."""
    async with RawClient.open(broker.mqtt_address) as first, RawClient.open(broker.mqtt_address) as second:
        assert await first.connack(encode_connect("twin")) == (0, 0)
        assert await second.connack(encode_connect("twin")) == (0, 0)
        assert await first.closed_by_peer()
        assert [c["client_id"] for c in await v1(api, 5)] == ["twin"]


async def test_topic_tree(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """req 13 lists the subscription tree level by level with child counts and client ids."""
    async with mqtt_client(broker, "c1") as c1, mqtt_client(broker, "c2") as c2:
        await c1.subscribe([("a/b", 0), ("x", 0)])
        await c2.subscribe("a/b", qos=1)
        await c2.subscribe("a/+", qos=1)
        assert await v1(api, 13) == [
            [{"topic": "", "cld_cnt": 2}],
            [{"topic": "a", "cld_cnt": 2}, {"topic": "x", "cld_cnt": 0, "client_id": ["c1"]}],
            [
                {"topic": "b", "cld_cnt": 0, "client_id": ["c1", "c2"]},
                {"topic": "+", "cld_cnt": 0, "client_id": ["c2"]},
            ],
        ]


async def test_garbage_bytes_close_only_that_connection(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A connection sending garbage is closed; other clients and the API keep working."""
    async with mqtt_client(broker, "steady") as steady:
        await steady.subscribe("still/here")
        async with RawClient.open(broker.mqtt_address) as raw:
            await raw.send(b"\x00\xff\xfe garbage \x00" * 10)
            assert await raw.closed_by_peer()
        await steady.publish("still/here", b"ok")
        assert (await next_message(steady)).payload == b"ok"
        assert [c["client_id"] for c in await v1(api, 5)] == ["steady"]


async def test_stalled_connect_is_closed() -> None:
    """A connection that starts a CONNECT but never completes it is closed after connect_timeout."""
    settings = ephemeral_settings(mqtt={"connect_timeout": 0.2})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as raw:
        await raw.send(b"\x10\x7f\x00\x04MQ")  # announces 127 bytes, sends 5
        assert await raw.closed_by_peer()
