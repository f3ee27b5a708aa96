"""Bridges to a real upstream (mosquitto), through a proxy that cuts or black-holes the link."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker import EdgeBroker
from broker.config.settings import BrokerSettings
from broker.mqtt.encoding import encode_connect, encode_puback, encode_subscribe
from broker.mqtt.framing import encode_publish
from broker.testing.helpers import wait_until
from tests.helpers import WAIT, ephemeral_settings, running_broker
from tests.integration.test_persistence import publish_acknowledged, publish_fields
from tests.link_proxy import LinkProxy
from tests.mqtt_packets import RawClient
from tests.upstream import Upstream, mosquitto_upstream

pytestmark = pytest.mark.anyio

PUBLISH, SUBACK = 3, 9


def bridged(address: tuple[str, int], tmp_path: Path | None = None, **bridge: Any) -> BrokerSettings:
    """Ephemeral settings with one bridge ``up`` to ``address`` (and a store in ``tmp_path``)."""
    host, port = address
    config: dict[str, Any] = {
        "server": f"mqtt-tcp://{host}:{port}",
        "keepalive": 2,
        "forwards": [{"local_topic": "up/#", "remote_topic": "edge/#", "qos": 1}],
        "subscription": [{"remote_topic": "cmd/#", "local_topic": "commands/#", "qos": 1}],
        **bridge,
    }
    sections: dict[str, Any] = {"bridges": {"mqtt": {"up": config}}}
    if tmp_path is not None:
        sections["persistence"] = {"enable": True, "path": str(tmp_path / "edgemq.db")}
    return ephemeral_settings(**sections)


class UpstreamSubscriber:
    """A raw client on the upstream that subscribes and acknowledges what it receives."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.payloads: list[bytes] = []

    async def next(self, timeout: float = WAIT) -> tuple[str, bytes]:
        first, body = await self.client.read_packet(timeout)
        assert first >> 4 == PUBLISH, first
        topic, payload, packet_id, _ = publish_fields(body, first)
        await self.client.send(encode_puback(packet_id))
        self.payloads.append(payload)
        return topic, payload

    async def until(self, payload: bytes, timeout: float = 20.0) -> None:
        """Read until ``payload`` arrived."""
        async with asyncio.timeout(timeout):
            while payload not in self.payloads:
                await self.next(timeout)


@contextlib.asynccontextmanager
async def upstream_subscriber(
    upstream: Upstream, client_id: str, topic_filter: str
) -> AsyncIterator[UpstreamSubscriber]:
    """A persistent subscriber of ``topic_filter`` on the upstream."""
    async with RawClient.open(upstream.address) as client:
        assert await client.connack(encode_connect(client_id, clean_session=False)) == (0, 0)
        await client.send(encode_subscribe(1, (topic_filter, 1)))
        first, _ = await client.read_packet()
        assert first >> 4 == SUBACK
        yield UpstreamSubscriber(client)


async def bridge_connected(broker: EdgeBroker, timeout: float = 20.0) -> None:
    """Wait until every bridge of the broker is connected."""
    await wait_until(
        broker.state, lambda s: bool(s.bridges()) and all(b.state == "connected" for b in s.bridges()), timeout
    )


async def test_local_messages_are_forwarded_with_their_topic_mapped(tmp_path: Path) -> None:
    """A QoS 1 message on a forwarded local topic reaches the upstream under the mapped topic."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(bridged(upstream.address)) as broker,
        RawClient.open(broker.mqtt_address) as device,
    ):
        await bridge_connected(broker)
        assert await device.connack(encode_connect("device")) == (0, 0)
        await publish_acknowledged(device, "up/temp/1", b"21.5", 1, 1)
        assert await cloud.next() == ("edge/temp/1", b"21.5")


async def test_upstream_commands_are_published_locally(tmp_path: Path) -> None:
    """A message on the upstream's subscribed topic is published locally under the mapped topic."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(bridged(upstream.address)) as broker,
        RawClient.open(broker.mqtt_address) as device,
        RawClient.open(upstream.address) as operator,
    ):
        assert await device.connack(encode_connect("device")) == (0, 0)
        await device.send(encode_subscribe(1, ("commands/#", 1)))
        assert (await device.read_packet())[0] >> 4 == SUBACK
        await bridge_connected(broker)
        assert await operator.connack(encode_connect("operator")) == (0, 0)
        await operator.send(encode_publish("cmd/reboot", b"now", qos=1, packet_id=1))
        first, body = await device.read_packet(timeout=10)
        assert publish_fields(body, first)[:2] == ("commands/reboot", b"now")


async def test_messages_queued_while_the_link_is_cut_arrive_in_order_after_it_returns(tmp_path: Path) -> None:
    """Cut the link, publish 200 QoS 1 messages, restore: all arrive upstream once each, in order."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(bridged(proxy.address)) as broker,
        RawClient.open(broker.mqtt_address) as device,
    ):
        await bridge_connected(broker)
        proxy.refuse()
        proxy.cut()
        assert await device.connack(encode_connect("device")) == (0, 0)
        for n in range(200):
            await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
        assert broker.state.bridges()[0].queued >= 1
        proxy.restore()
        await cloud.until(b"199")
        numbers = [int(p) for p in cloud.payloads]
        assert numbers == sorted(set(numbers))  # in order, no duplicate
        assert numbers == list(range(200))  # nothing lost


async def test_the_queue_survives_kill_of_the_broker_with_persistence(tmp_path: Path) -> None:
    """With persistence on, messages queued for a dead link are in the store and sent by the next broker."""
    async with mosquitto_upstream(tmp_path) as upstream, LinkProxy(upstream.address).running() as proxy:
        proxy.refuse()
        async with (
            running_broker(bridged(proxy.address, tmp_path)) as broker,
            RawClient.open(broker.mqtt_address) as device,
        ):
            assert await device.connack(encode_connect("device")) == (0, 0)
            for n in range(50):
                await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
        proxy.restore()
        async with (
            upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
            running_broker(bridged(proxy.address, tmp_path)),
        ):
            await cloud.until(b"49")
            assert [int(p) for p in cloud.payloads] == list(range(50))


async def test_a_full_queue_drops_and_counts_the_newest(tmp_path: Path) -> None:
    """Past max_send_queue_len, new messages are dropped and counted; the queued ones still go."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
    ):
        proxy.refuse()
        async with running_broker(bridged(proxy.address, max_send_queue_len=5)) as broker:
            async with RawClient.open(broker.mqtt_address) as device:
                assert await device.connack(encode_connect("device")) == (0, 0)
                for n in range(8):
                    await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
            (stats,) = broker.state.bridges()
            assert (stats.queued, stats.dropped) == (5, 3)
            proxy.restore()
            await cloud.until(b"4")
            assert cloud.payloads == [b"%d" % n for n in range(5)]


async def test_several_bridges_run_at_once(tmp_path: Path) -> None:
    """Two bridges to two upstreams each forward what their own rules match, and only that."""
    async with (
        mosquitto_upstream(tmp_path) as first,
        mosquitto_upstream(tmp_path) as second,
        upstream_subscriber(first, "cloud-a", "#") as cloud_a,
        upstream_subscriber(second, "cloud-b", "#") as cloud_b,
    ):
        bridges = {
            name: {"server": f"mqtt-tcp://{host}:{port}", "forwards": [{"local_topic": f"{name}/#", "qos": 1}]}
            for name, (host, port) in (("a", first.address), ("b", second.address))
        }
        async with (
            running_broker(ephemeral_settings(bridges={"mqtt": bridges})) as broker,
            RawClient.open(broker.mqtt_address) as device,
        ):
            await bridge_connected(broker)
            assert await device.connack(encode_connect("device")) == (0, 0)
            await publish_acknowledged(device, "a/1", b"to a", 1, 1)
            await publish_acknowledged(device, "b/1", b"to b", 1, 2)
            assert await cloud_a.next() == ("a/1", b"to a")
            assert await cloud_b.next() == ("b/1", b"to b")
            with pytest.raises(TimeoutError):  # each upstream got only its own
                await cloud_a.next(timeout=0.5)


async def test_an_upstream_name_that_does_not_resolve_is_reported_and_the_broker_serves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A DNS failure is one WARNING naming the server, last_error says why, local clients are served."""
    settings = ephemeral_settings(bridges={"mqtt": {"up": {"server": "mqtt-tcp://no-such-host.invalid:1883"}}})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as device:
        await wait_until(broker.state, lambda s: s.bridges()[0].last_error is not None, WAIT * 2)
        assert broker.state.bridges()[0].state != "connected"
        warnings = [
            r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "bridge up" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert "no-such-host.invalid" in warnings[0]
        assert await device.connack(encode_connect("device")) == (0, 0)
        await publish_acknowledged(device, "up/x", b"queued meanwhile", 1, 1)
