"""Every row of spec section 3 (v4 REST) and section 4 (health), with real clients connected."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import EdgeBroker
from broker.amqtt_adapter.edge_broker import EdgeAmqttBroker
from broker.mqtt.encoding import encode_connect
from broker.mqtt.listeners import ListenerSet
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

NEEDS_A_QUERY = {"/mqtt/retained/message"}  # ?topic=


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get("/v4" + path, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == 0
    return response.json()


async def error(response_future: Any, status: int, code: int) -> None:
    """The answer is ``status`` with JSON ``{"code": code}``, optionally followed by a human message."""
    response = await response_future
    body = response.json()
    assert (response.status_code, body.pop("code")) == (status, code), response.text
    assert set(body) <= {"message"}
    assert isinstance(body.get("message", ""), str)
    assert response.headers["content-type"] == "application/json"


async def test_index_lists_exactly_the_endpoints_served(api: httpx.AsyncClient) -> None:
    """GET /api/v4 lists endpoints, and every listed GET without parameters answers 200 (400/107
    where a query parameter is required)."""
    listed = (await get(api, ""))["data"]
    assert {"path", "name", "method", "descr"} == set(listed[0])
    for endpoint in listed:
        if endpoint["method"] == "GET" and "{" not in endpoint["path"]:
            response = await api.get("/v4" + endpoint["path"].rstrip("/"))
            if endpoint["path"] in NEEDS_A_QUERY:
                assert (response.status_code, response.json()["code"]) == (400, 107), endpoint
            else:
                assert response.status_code == 200, endpoint
    assert {(e["method"], e["path"]) for e in listed} >= {
        ("POST", "/mqtt/publish"),
        ("DELETE", "/clients/{clientid:path}"),
    }


async def test_brokers_and_nodes(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """brokers and nodes describe this broker with NanoMQ's fields and formats."""
    async with mqtt_client(broker, "c1"):
        [about] = (await get(api, "/brokers"))["data"]
        [node] = (await get(api, "/nodes"))["data"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", about["datetime"])
    assert re.fullmatch(r"\d+ Hours, \d+ minutes, \d+ seconds", about["uptime"])
    assert (about["node_status"], about["sysdescr"]) == ("Running", "edgemq")
    assert node["connections"] == 1
    assert node["version"] == about["version"]


async def test_client_objects_and_filters(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """Client objects carry every field; filters combine; unknown filters and bad values are 400/108."""
    will = aiomqtt.Will("w/alice", b"bye")
    async with (
        mqtt_client(broker, "a1", username="alice", will=will, keepalive=30),
        mqtt_client(broker, "b1", username="bob", clean_session=False),
    ):
        pass_through = (await get(api, "/clients", username="alice", conn_state="connected"))["data"]
        assert [c["client_id"] for c in pass_through] == ["a1"]
        a1 = pass_through[0]
        assert a1 | {"connected_at": "", "port": 0} == {
            "client_id": "a1", "username": "alice", "keepalive": 30, "conn_state": "connected",
            "clean_start": True, "proto_name": "MQTT", "proto_ver": 4, "will_topic": "w/alice",
            "will_msg": "bye", "ip_address": "127.0.0.1", "port": 0, "connected_at": "", "recv_msg": 0, "send_msg": 0,
        }  # fmt: skip
        assert [c["client_id"] for c in (await get(api, "/clients", clean_start="false"))["data"]] == ["b1"]
        assert (await get(api, "/clients", proto_ver="5"))["data"] == []
        assert [c["client_id"] for c in (await get(api, "/clients/b1"))["data"]] == ["b1"]
        assert (await get(api, "/clients/nobody"))["data"] == []
        assert [c["client_id"] for c in (await get(api, "/clients/username/alice"))["data"]] == ["a1"]
        for params in ({"colour": "red"}, {"conn_state": "sleepy"}, {"clean_start": "yes"}, {"proto_ver": "9"}):
            await error(api.get("/v4/clients", params=params), 400, 108)
    await wait_state(broker, lambda s: (c := s.client("b1")) is not None and not c.connected)
    assert [c["client_id"] for c in (await get(api, "/clients", conn_state="disconnected"))["data"]] == ["b1"]


async def test_paging(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """_page and _limit page a list and add meta; out-of-range values are 400/108."""
    async with mqtt_client(broker, "c1"), mqtt_client(broker, "c2"), mqtt_client(broker, "c3"):
        first = await get(api, "/clients", _limit="2")
        second = await get(api, "/clients", _limit="2", _page="2")
        assert (len(first["data"]), first["meta"]) == (2, {"page": 1, "limit": 2, "count": 3})
        assert (len(second["data"]), second["meta"]) == (1, {"page": 2, "limit": 2, "count": 3})
        assert "meta" not in await get(api, "/clients")
        for params in ({"_limit": "10001"}, {"_limit": "0"}, {"_page": "x"}):
            await error(api.get("/v4/clients", params=params), 400, 108)


async def test_subscriptions_and_topic_tree(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """subscriptions are flat rows (paged), per client too; the topic tree uses the key clientid."""
    async with mqtt_client(broker, "s1") as s1, mqtt_client(broker, "s2") as s2:
        await s1.subscribe([("a/b", 1), ("c", 0)])
        await s2.subscribe("a/b", qos=2)
        rows = (await get(api, "/subscriptions"))["data"]
        assert rows == [
            {"clientid": "s1", "topic": "a/b", "qos": 1},
            {"clientid": "s1", "topic": "c", "qos": 0},
            {"clientid": "s2", "topic": "a/b", "qos": 2},
        ]
        assert (await get(api, "/subscriptions", _limit="1", _page="3"))["data"] == rows[2:]
        assert (await get(api, "/subscriptions/s2"))["data"] == rows[2:]
        tree = (await get(api, "/topic-tree"))["data"]
        assert tree[2] == [{"topic": "b", "cld_cnt": 0, "clientid": ["s1", "s2"]}]


async def test_kick_publishes_the_will_and_frees_the_client_id(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """DELETE /clients/{id} closes the connection, publishes its will, and the id can connect again."""
    async with mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with RawClient.open(broker.mqtt_address) as victim:
            assert await victim.connack(encode_connect("victim", will=("wills/victim", b"kicked", 0, False))) == (0, 0)
            assert (await api.delete("/v4/clients/victim")).json() == {"code": 0}
            assert await victim.closed_by_peer()
            assert (await next_message(watcher)).payload == b"kicked"
        async with mqtt_client(broker, "victim"):
            assert (await get(api, "/clients/victim"))["data"][0]["conn_state"] == "connected"
    await error(api.delete("/v4/clients/ghost"), 404, 112)


async def test_clean_kick_drops_the_session(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """?clean=true also discards a persistent session; without it the session stays offline."""
    async with mqtt_client(broker, "keep", clean_session=False) as keep:
        await keep.subscribe("k")
        assert (await api.delete("/v4/clients/keep")).status_code == 200
    await wait_state(broker, lambda s: (c := s.client("keep")) is not None and not c.connected)
    assert (await api.delete("/v4/clients/keep", params={"clean": "true"})).json() == {"code": 0}
    assert (await get(api, "/clients/keep"))["data"] == []
    assert (await get(api, "/subscriptions"))["data"] == []


async def test_publish_reaches_subscribers_at_the_right_qos(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """POST /mqtt/publish routes like an MQTT publish: min QoS, counted, attributed to clientid."""
    async with mqtt_client(broker, "sub") as sub, mqtt_client(broker, "dev"):
        await sub.subscribe("http/#", qos=1)
        body = {"topic": "http/t", "payload": "hello", "qos": 2, "clientid": "dev"}
        assert (await api.post("/v4/mqtt/publish", json=body)).json() == {"code": 0}
        message = await next_message(sub)
        assert (message.payload, message.qos, message.retain) == (b"hello", 1, False)
        b64 = {"topics": "http/a,http/b", "payload": base64.b64encode(b"\x00\xff").decode(), "encoding": "base64"}
        assert (await api.post("/v4/mqtt/publish", json=b64)).status_code == 200
        assert {(str(m.topic), m.payload) for m in [await next_message(sub), await next_message(sub)]} == {
            ("http/a", b"\x00\xff"),
            ("http/b", b"\x00\xff"),
        }
        dev = (await get(api, "/clients/dev"))["data"][0]
    assert dev["send_msg"] == 1
    assert broker.stats().message_in == 3


async def test_published_retained_message(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A retained HTTP publish is listed, reaches a later subscriber, and can be deleted."""
    body = {"topic": "state/door", "payload": "open", "retain": True, "qos": 1}
    assert (await api.post("/v4/mqtt/publish", json=body)).status_code == 200
    assert (await get(api, "/mqtt/retained"))["data"] == [{"topic": "state/door", "qos": 1, "payload_size": 4}]
    async with mqtt_client(broker, "late") as late:
        await late.subscribe("state/#")
        message = await next_message(late)
        assert (message.payload, message.retain) == (b"open", True)
    assert (await api.delete("/v4/mqtt/retained", params={"topic": "state/door"})).json() == {"code": 0}
    await error(api.delete("/v4/mqtt/retained", params={"topic": "state/door"}), 404, 102)
    async with mqtt_client(broker, "later") as later:
        await later.subscribe("state/#")
        await later.publish("state/marker", b"m")
        assert (await next_message(later)).payload == b"m"  # the deleted message did not come first


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"payload": "x"}, 400, 107),
        ({"topic": "t"}, 400, 107),
        ({"topic": "a/#", "payload": "x"}, 400, 115),
        ({"topic": "", "payload": "x"}, 400, 115),
        ({"topics": "ok,a/+", "payload": "x"}, 400, 115),
        ({"topic": "t", "payload": "x", "qos": 3}, 400, 108),
        ({"topic": "t", "payload": "x", "retain": "yes"}, 400, 108),
        ({"topic": "t", "payload": "!!", "encoding": "base64"}, 400, 108),
        ({"topic": "t", "payload": "x", "properties": {"message_expiry_interval": "5"}}, 400, 108),
        ([1], 400, 108),
    ],
)
async def test_publish_errors(api: httpx.AsyncClient, body: Any, status: int, code: int) -> None:
    """Publish errors: 107 missing, 115 illegal topic, 108 bad values (MQTT 5 properties included)."""
    await error(api.post("/v4/mqtt/publish", json=body), status, code)


async def test_publish_invalid_json(api: httpx.AsyncClient) -> None:
    """A body that is not JSON is 400/109."""
    await error(api.post("/v4/mqtt/publish", content=b"{oops"), 400, 109)


async def test_publish_batch_results_in_order(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """publish_batch answers one result per item, in order, and publishes the good ones."""
    items = [{"topic": "b/1", "payload": "1"}, {"topic": "b/#", "payload": "2"}, {"topic": "b/3", "payload": "3"}]
    answer = (await api.post("/v4/mqtt/publish_batch", json=items)).json()
    assert answer == {
        "code": 0,
        "data": [{"topic": "b/1", "code": 0}, {"topic": "b/#", "code": 115}, {"topic": "b/3", "code": 0}],
    }
    assert broker.stats().message_in == 2


async def test_prometheus_text_parses_and_moves_with_traffic(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """The Prometheus text parses with prometheus-client's parser, uses NanoMQ's names, and counts."""

    async def scrape() -> dict[str, float]:
        response = await api.get("/v4/prometheus")
        assert response.headers["content-type"].startswith("text/plain")
        families = text_string_to_metric_families(response.text)
        return {sample.name: sample.value for family in families for sample in family.samples}

    before = await scrape()
    async with mqtt_client(broker, "p") as client:
        await client.subscribe("m")
        await client.publish("m", b"1")
        await next_message(client)
        after = await scrape()
    names = {"nanomq_connections_count", "nanomq_sessions_count", "nanomq_topics_count", "nanomq_subscribers_count",
             "nanomq_messages_received", "nanomq_messages_sent", "nanomq_messages_dropped", "nanomq_memory_usage",
             "nanomq_cpu_usage", "nanomq_connections_max", "nanomq_memory_usage_max"}  # fmt: skip
    assert names <= set(after)
    assert after["nanomq_messages_received"] == before["nanomq_messages_received"] + 1
    assert (after["nanomq_connections_count"], after["nanomq_subscribers_count"], after["nanomq_topics_count"]) == (
        1,
        1,
        1,
    )
    assert after["nanomq_memory_usage"] > 0


async def test_prometheus_auth_can_be_turned_off() -> None:
    """With prometheus_auth = false a scraper needs no credentials; the rest of the API still does."""
    async with (
        running_broker(ephemeral_settings(http_server={"prometheus_auth": False})) as broker,
        httpx.AsyncClient(base_url=broker.api_url) as anonymous,
    ):
        assert (await anonymous.get("/v4/prometheus")).status_code == 200
        assert (await anonymous.get("/v4/metrics")).status_code == 401


async def test_prometheus_needs_auth_by_default(broker: EdgeBroker) -> None:
    """By default the Prometheus endpoint needs the admin credentials."""
    async with httpx.AsyncClient(base_url=broker.api_url) as anonymous:
        await error(anonymous.get("/v4/prometheus"), 401, 104)


async def test_metrics(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """/metrics has NanoMQ's fields plus message counters."""
    body = await get(api, "/metrics")
    assert re.fullmatch(r"\d+\.\d\d%", body["cpuinfo"])
    assert int(body["memory"]) > 0
    assert {"connections", "messages_received", "messages_sent", "messages_dropped"} <= set(body)


async def test_configuration_and_sections(api: httpx.AsyncClient) -> None:
    """/configuration is req 11's answer; a section by name; an unknown section is 404/101."""
    config = (await get(api, "/configuration"))["data"]
    assert config["http_server"]["password"] == "******"
    assert (await get(api, "/configuration/mqtt"))["data"] == config["mqtt"]
    await error(api.get("/v4/configuration/colours"), 404, 101)


async def test_reload_applies_live_settings(api: httpx.AsyncClient, broker: EdgeBroker) -> None:
    """POST /reload applies live settings at once; unknown or restart-only keys are 400/108, nothing applied."""
    view = (await get(api, "/reload"))["data"]
    assert view["mqtt"]["max_mqueue_len"] == 2048
    assert view["http_server"]["password"] == "******"
    answer = await api.post("/v4/reload", json={"data": {"mqtt": {"max_mqueue_len": 7}}})
    assert answer.json()["data"]["mqtt"]["max_mqueue_len"] == 7
    assert broker.settings.mqtt.max_mqueue_len == 7
    for change in (
        {"mqtt": {"colour": 1}},
        {"listeners": {"tcp": {"bind": "127.0.0.1:1"}}},
        {"mqtt": {"max_mqueue_len": "x"}},
    ):
        await error(api.post("/v4/reload", json={"data": change}), 400, 108)
    await error(api.post("/v4/reload", json={}), 400, 107)
    assert broker.settings.mqtt.max_mqueue_len == 7


async def test_ctrl(api: httpx.AsyncClient, broker: EdgeBroker) -> None:
    """POST /ctrl/restart answers, then restarts; another action is 404/101."""
    assert (await api.post("/v4/ctrl/restart")).json() == {"code": 0}
    await broker.wait_for_restarts()
    assert broker.mqtt_ready
    await error(api.post("/v4/ctrl/reboot"), 404, 101)


async def test_unknown_paths_methods_and_slashes(api: httpx.AsyncClient) -> None:
    """Unknown path 404/102, wrong method 405/102, a trailing slash is ignored."""
    await error(api.get("/v4/nothing"), 404, 102)
    await error(api.delete("/v4/brokers"), 405, 102)
    assert (await api.get("/v4/brokers/")).status_code == 200


async def test_readyz_is_503_while_mqtt_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """/readyz is 503 while the MQTT listeners are down during a restart, then 200 again."""
    reopen = asyncio.Event()
    start_listening = ListenerSet.start

    async def held_start(self: ListenerSet) -> None:
        await reopen.wait()  # the restart waits here, between closing and reopening the listeners
        await start_listening(self)

    async with running_broker(ephemeral_settings()) as broker, httpx.AsyncClient() as http:
        host, port = broker.http_address
        monkeypatch.setattr(ListenerSet, "start", held_start)
        restart = asyncio.create_task(broker.restart())
        async with asyncio.timeout(WAIT):
            while broker.mqtt_ready:  # noqa: ASYNC110 - yields to the restart task, no time passes
                await asyncio.sleep(0)
        assert (await http.get(f"http://{host}:{port}/readyz")).status_code == 503
        assert (await http.get(f"http://{host}:{port}/healthz")).status_code == 200
        reopen.set()
        await restart
        assert (await http.get(f"http://{host}:{port}/readyz")).status_code == 200


async def test_publish_while_the_mqtt_side_stops_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the broker stops (MQTT side gone, admin API still serving), a publish is 503 JSON, not 500."""
    held, release = asyncio.Event(), asyncio.Event()
    shutdown = EdgeAmqttBroker.shutdown

    async def held_shutdown(self: EdgeAmqttBroker) -> None:
        held.set()
        await release.wait()  # the stop waits here, with the MQTT side already detached
        await shutdown(self)

    async with running_broker(ephemeral_settings()) as broker, httpx.AsyncClient(auth=broker.admin_auth) as http:
        monkeypatch.setattr(EdgeAmqttBroker, "shutdown", held_shutdown)
        stopping = asyncio.create_task(broker.stop())
        await asyncio.wait_for(held.wait(), WAIT)
        answer = await http.post(f"{broker.api_url}/v4/mqtt/publish", json={"topic": "t", "payload": "x"})
        release.set()
        await stopping
    assert answer.status_code == 503
    assert answer.json()["code"] == 102
