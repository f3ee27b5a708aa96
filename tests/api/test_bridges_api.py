"""/api/v4/bridges*, and the bridges in /metrics and /prometheus, with a bridge to a real mosquitto."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect
from broker.mqtt.framing import encode_publish
from tests.helpers import WAIT, mqtt_client, next_message, running_broker, wait_state
from tests.integration.test_bridges import bridge_connected, bridged, upstream_subscriber
from tests.integration.test_persistence import publish_acknowledged
from tests.mqtt_packets import RawClient
from tests.upstream import Upstream, mosquitto_upstream

pytestmark = pytest.mark.anyio

STATE_FIELDS = {"state", "queued", "in_flight", "oldest_queued_age_s", "forwarded", "received", "dropped",
                "last_error"}  # fmt: skip


@dataclass(frozen=True)
class Bridged:
    """A broker with bridge ``up`` connected to a real mosquitto, and an admin API client."""

    broker: EdgeBroker
    upstream: Upstream
    api: httpx.AsyncClient


@pytest.fixture
async def bridged_broker(tmp_path: Path) -> AsyncIterator[Bridged]:
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        running_broker(bridged(upstream.address, username="edge", password="s3cret")) as broker,
        httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public"), timeout=WAIT) as api,
    ):
        await bridge_connected(broker)
        yield Bridged(broker, upstream, api)


async def nodes(api: httpx.AsyncClient, path: str = "/v4/bridges") -> list[dict[str, Any]]:
    """The bridge nodes of a GET answer, checking NanoMQ's envelope."""
    response = await api.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    result: list[dict[str, Any]] = body["data"]["bridge"]["nodes"]
    return result


async def scrape(api: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    """Every edgemq_bridge_* sample of /api/v4/prometheus by (name, bridge label)."""
    response = await api.get("/v4/prometheus")
    assert response.status_code == 200, response.text
    return {
        (sample.name, sample.labels["bridge"]): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("edgemq_bridge_")
    }


@contextlib.asynccontextmanager
async def operator(upstream: Upstream) -> AsyncIterator[RawClient]:
    """A raw client connected to the upstream, to publish commands there."""
    async with RawClient.open(upstream.address) as client:
        assert await client.connack(encode_connect("operator")) == (0, 0)
        yield client


@contextlib.asynccontextmanager
async def local_subscriber(broker: EdgeBroker, *filters: str) -> AsyncIterator[aiomqtt.Client]:
    """A local client subscribed to ``filters`` at QoS 1."""
    async with mqtt_client(broker, "device") as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        yield client


async def test_listing_has_nanomqs_shape_with_settings_and_state(bridged_broker: Bridged) -> None:
    """GET /bridges lists the running bridge under data.bridge.nodes with its settings and state fields."""
    [node] = await nodes(bridged_broker.api)
    assert node["name"] == "up"
    assert node["server"] == "mqtt-tcp://{}:{}".format(*bridged_broker.upstream.address)
    assert node["forwards"][0]["local_topic"] == "up/#"
    assert set(node) >= STATE_FIELDS
    assert node["state"] == "connected"


async def test_listing_masks_the_password(bridged_broker: Bridged) -> None:
    """The bridge's password is shown as ******, its user name as it is."""
    [node] = await nodes(bridged_broker.api)
    assert (node["username"], node["password"]) == ("edge", "******")


async def test_one_bridge_is_listed_alone(bridged_broker: Bridged) -> None:
    """GET /bridges/up answers that bridge's node."""
    assert [node["name"] for node in await nodes(bridged_broker.api, "/v4/bridges/up")] == ["up"]


async def test_unknown_bridge_is_404_102(bridged_broker: Bridged) -> None:
    """GET /bridges/<unknown> is 404 with code 102."""
    response = await bridged_broker.api.get("/v4/bridges/nosuch")
    assert (response.status_code, response.json()["code"]) == (404, 102)


async def test_switching_an_unknown_bridge_is_404_102(bridged_broker: Bridged) -> None:
    """POST /bridges/switch/<unknown> is 404 with code 102."""
    response = await bridged_broker.api.post("/v4/bridges/switch/nosuch", json={"data": {"bridge_switch": False}})
    assert (response.status_code, response.json()["code"]) == (404, 102)


async def test_switch_off_pauses_the_bridge(bridged_broker: Bridged) -> None:
    """bridge_switch false answers code 0 and the bridge's state becomes paused."""
    response = await bridged_broker.api.post("/v4/bridges/switch/up", json={"data": {"bridge_switch": False}})
    assert response.json() == {"code": 0}
    [node] = await nodes(bridged_broker.api)
    assert node["state"] == "paused"


async def test_switch_on_resumes_the_bridge(bridged_broker: Bridged) -> None:
    """bridge_switch true after false makes the bridge connected again."""
    api = bridged_broker.api
    await api.post("/v4/bridges/switch/up", json={"data": {"bridge_switch": False}})
    response = await api.post("/v4/bridges/switch/up", json={"data": {"bridge_switch": True}})
    assert response.json() == {"code": 0}
    await wait_state(bridged_broker.broker, lambda s: s.bridges()[0].state == "connected")


async def test_a_paused_bridge_holds_messages_until_resumed(bridged_broker: Bridged) -> None:
    """A message forwarded while the bridge is paused stays queued until it is resumed."""
    api, broker = bridged_broker.api, bridged_broker.broker
    async with (
        upstream_subscriber(bridged_broker.upstream, "cloud", "edge/#") as cloud,
        RawClient.open(broker.mqtt_address) as device,
    ):
        await api.post("/v4/bridges/switch/up", json={"data": {"bridge_switch": False}})
        assert await device.connack(encode_connect("device")) == (0, 0)
        await publish_acknowledged(device, "up/t", b"held", 1, 1)
        assert (await nodes(api))[0]["queued"] == 1
        await api.post("/v4/bridges/switch/up", json={"data": {"bridge_switch": True}})
        assert await cloud.next() == ("edge/t", b"held")


async def test_sub_adds_a_remote_subscription(bridged_broker: Bridged) -> None:
    """After POST /bridges/sub, a message published upstream on the new filter arrives locally, mapped."""
    rule = {"remote_topic": "alerts/#", "local_topic": "local/alerts/#", "qos": 1}
    async with local_subscriber(bridged_broker.broker, "local/alerts/#") as device:
        response = await bridged_broker.api.post("/v4/bridges/sub/up", json={"data": {"subscription": [rule]}})
        assert response.json() == {"code": 0}
        async with operator(bridged_broker.upstream) as cloud:
            await cloud.send(encode_publish("alerts/fire", b"now", qos=1, packet_id=1))
            message = await next_message(device)
    assert (message.topic.value, message.payload) == ("local/alerts/fire", b"now")


async def test_unsub_removes_a_remote_subscription(bridged_broker: Bridged) -> None:
    """After POST /bridges/unsub of cmd/#, an upstream cmd message is not received; a later probe is."""
    api = bridged_broker.api
    probe = {"remote_topic": "probe/#", "qos": 1}
    assert (await api.post("/v4/bridges/sub/up", json={"data": {"subscription": [probe]}})).json() == {"code": 0}
    async with local_subscriber(bridged_broker.broker, "commands/#", "probe/#") as device:
        response = await api.post("/v4/bridges/unsub/up", json={"data": {"unsubscription": [{"topic": "cmd/#"}]}})
        assert response.json() == {"code": 0}
        async with operator(bridged_broker.upstream) as cloud:
            await cloud.send(encode_publish("cmd/reboot", b"dropped", qos=1, packet_id=1))
            await cloud.send(encode_publish("probe/1", b"after", qos=1, packet_id=2))
            message = await next_message(device)  # the upstream keeps the order of one publisher
    assert (message.topic.value, message.payload) == ("probe/1", b"after")


async def test_the_listing_shows_subscriptions_changed_at_run_time(bridged_broker: Bridged) -> None:
    """After sub and unsub, GET /bridges/{name} lists the subscriptions in effect, not the file's."""
    api = bridged_broker.api
    rule = {"remote_topic": "alerts/#", "qos": 1}
    assert (await api.post("/v4/bridges/sub/up", json={"data": {"subscription": [rule]}})).json() == {"code": 0}
    response = await api.post("/v4/bridges/unsub/up", json={"data": {"unsubscription": [{"topic": "cmd/#"}]}})
    assert response.json() == {"code": 0}
    (node,) = (await api.get("/v4/bridges/up")).json()["data"]["bridge"]["nodes"]
    assert [s["remote_topic"] for s in node["subscription"]] == ["alerts/#"]


async def test_put_changes_the_forwards_of_the_running_bridge(bridged_broker: Bridged) -> None:
    """A PUT with new forwards (NanoMQ's {"<name>": {...}} body) is answered 0 and forwards by the new rule."""
    api, broker = bridged_broker.api, bridged_broker.broker
    [node] = await nodes(api)
    changed = {**node, "forwards": [{"local_topic": "new/#", "remote_topic": "edge2/#", "qos": 1}]}
    async with (
        upstream_subscriber(bridged_broker.upstream, "cloud", "edge2/#") as cloud,
        RawClient.open(broker.mqtt_address) as device,
    ):
        assert (await api.put("/v4/bridges/up", json={"up": changed})).json() == {"code": 0}
        await bridge_connected(broker)
        assert await device.connack(encode_connect("device")) == (0, 0)
        await publish_acknowledged(device, "new/x", b"1", 1, 1)
        assert await cloud.next() == ("edge2/x", b"1")


async def test_put_keeps_a_masked_password(bridged_broker: Bridged) -> None:
    """A node sent back with password ****** keeps the bridge's password."""
    api, broker = bridged_broker.api, bridged_broker.broker
    [node] = await nodes(api)
    assert (await api.put("/v4/bridges/up", json=node)).json() == {"code": 0}
    settings = broker.bridges.settings("up")
    assert settings is not None
    assert settings.password == "s3cret"


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("PUT", "/v4/bridges/up", b"{not json", 109),
        ("PUT", "/v4/bridges/up", b'{"server": "ftp://example.com"}', 108),
        ("PUT", "/v4/bridges/up", b'{"server": "mqtt-tcp://127.0.0.1:1", "colour": "red"}', 108),
        ("PUT", "/v4/bridges/up", b'{"name": "other", "server": "mqtt-tcp://127.0.0.1:1"}', 108),
        ("PUT", "/v4/bridges/up", b'{"enable": false, "server": "mqtt-tcp://127.0.0.1:1"}', 108),
        ("POST", "/v4/bridges/switch/up", b'{"data": {"bridge_switch": "off"}}', 108),
        ("POST", "/v4/bridges/switch/up", b'{"bridge_switch": false}', 108),
        ("POST", "/v4/bridges/sub/up", b'{"data": {"subscription": [{"remote_topic": "a/#/b"}]}}', 108),
        ("POST", "/v4/bridges/sub/up", b'{"data": {"subscription": []}}', 108),
        ("POST", "/v4/bridges/sub/up", b'{"data": {"subscription": [{"remote_topic": "a"}], "sub_properties": {}}}',
         108),
        ("POST", "/v4/bridges/unsub/up", b'{"data": {"unsubscription": ["cmd/#"]}}', 108),
        ("POST", "/v4/bridges/unsub/up", b"[", 109),
    ],
)  # fmt: skip
async def test_invalid_bodies_are_refused(
    bridged_broker: Bridged, method: str, path: str, body: bytes, code: int
) -> None:
    """Each invalid body is 400 with its code, and the bridge runs on unchanged."""
    response = await bridged_broker.api.request(method, path, content=body)
    assert (response.status_code, response.json()["code"]) == (400, code), response.text
    [node] = await nodes(bridged_broker.api)
    assert (node["state"], node["forwards"][0]["local_topic"]) == ("connected", "up/#")


async def test_metrics_list_the_bridge_with_its_figures(bridged_broker: Bridged) -> None:
    """/api/v4/metrics has one object per running bridge in its metrics list."""
    response = await bridged_broker.api.get("/v4/metrics")
    [figures] = response.json()["metrics"]
    assert figures["bridge"] == "up"
    assert figures["state"] == "connected"
    assert set(figures) >= STATE_FIELDS


async def test_prometheus_has_bridge_series_labelled_by_bridge(bridged_broker: Bridged) -> None:
    """A scrape has every edgemq_bridge_* series for bridge "up", connected = 1."""
    samples = await scrape(bridged_broker.api)
    assert set(samples) == {
        (name, "up")
        for name in ("edgemq_bridge_connected", "edgemq_bridge_queued", "edgemq_bridge_in_flight",
                     "edgemq_bridge_oldest_queued_seconds", "edgemq_bridge_forwarded_total",
                     "edgemq_bridge_received_total", "edgemq_bridge_dropped_total")
    }  # fmt: skip
    assert samples[("edgemq_bridge_connected", "up")] == 1


async def test_prometheus_counts_forwarded_messages(bridged_broker: Bridged) -> None:
    """A message the upstream acknowledged adds 1 to edgemq_bridge_forwarded_total."""
    broker = bridged_broker.broker
    async with RawClient.open(broker.mqtt_address) as device:
        assert await device.connack(encode_connect("device")) == (0, 0)
        await publish_acknowledged(device, "up/t", b"1", 1, 1)
    await wait_state(broker, lambda s: s.bridges()[0].forwarded == 1)  # the upstream's PUBACK came
    assert (await scrape(bridged_broker.api))[("edgemq_bridge_forwarded_total", "up")] == 1


async def test_without_bridges_metrics_list_is_empty(api: httpx.AsyncClient) -> None:
    """With no bridge the metrics list of /api/v4/metrics is empty, as NanoMQ's."""
    assert (await api.get("/v4/metrics")).json()["metrics"] == []


async def test_without_bridges_prometheus_has_no_bridge_series(api: httpx.AsyncClient) -> None:
    """With no bridge a scrape has no edgemq_bridge_* series."""
    assert await scrape(api) == {}


async def test_without_bridges_the_listing_is_empty(api: httpx.AsyncClient) -> None:
    """With no bridge GET /bridges answers an empty nodes list."""
    assert await nodes(api) == []
