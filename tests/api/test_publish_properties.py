"""v4 publish and publish_batch with NanoMQ's MQTT 5 ``properties`` object: what is refused, and
what MQTT 3.1.1 subscribers get (the message without them)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from broker import EdgeBroker
from tests.helpers import mqtt_client, next_message

pytestmark = pytest.mark.anyio

NANOMQ_EXAMPLE = {"user_properties": {"id": 10010, "name": "emqx", "foo": "bar"}, "content_type": "text/plain"}
"""The properties of NanoMQ's documented publish example (docs/en_US/http-api/v4.md)."""


def publish(properties: Any, payload: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"topic": "props/t", "payload": payload, "properties": properties, **fields}


async def assert_refused(response: httpx.Response, *words: str) -> None:
    """400 with the API's error JSON: code 108 and a message naming what was wrong."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == 108
    for word in words:
        assert word in body["message"], body["message"]


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ([], "properties must be a JSON object"),
        (None, "properties must be a JSON object"),
        ("content_type=x", "properties must be a JSON object"),
        ({"colour": "red"}, "'colour'"),
        ({"payload_format_indicator": "1"}, "payload_format_indicator"),
        ({"payload_format_indicator": True}, "payload_format_indicator"),
        ({"payload_format_indicator": 2}, "payload_format_indicator"),
        ({"payload_format_indicator": 1.0}, "payload_format_indicator"),
        ({"message_expiry_interval": "60"}, "message_expiry_interval"),
        ({"message_expiry_interval": -1}, "message_expiry_interval"),
        ({"message_expiry_interval": 2**32}, "message_expiry_interval"),
        ({"message_expiry_interval": 1.5}, "message_expiry_interval"),
        ({"message_expiry_interval": None}, "message_expiry_interval"),
        ({"response_topic": 7}, "response_topic"),
        ({"response_topic": "replies/+"}, "response_topic"),
        ({"response_topic": ""}, "response_topic"),
        ({"response_topic": "a\u0000b"}, "response_topic"),
        ({"content_type": 7}, "content_type"),
        ({"content_type": ["text/plain"]}, "content_type"),
        ({"content_type": "\ud800"}, "content_type"),
        ({"content_type": "x" * 65_536}, "content_type"),
        ({"correlation_data": 42}, "correlation_data"),
        ({"correlation_data": "x" * 65_536}, "correlation_data"),
        ({"user_properties": [["a", "b"]]}, "user_properties"),
        ({"user_properties": "a=b"}, "user_properties"),
        ({"user_properties": {"a": None}}, "user_properties['a']"),
        ({"user_properties": {"a": {"b": "c"}}}, "user_properties['a']"),
        ({"user_properties": {"a": ["b"]}}, "user_properties['a']"),
        ({"user_properties": {"a": "b\u0000"}}, "user_properties['a']"),
        ({"user_properties": {"a\u0000": "b"}}, "user property name"),
    ],
)
async def test_a_wrong_property_is_refused_and_nothing_published(
    broker: EdgeBroker, api: httpx.AsyncClient, properties: Any, named: str
) -> None:
    """A properties object of the wrong shape, an unknown key or a value of the wrong type or
    range is 400/108 naming it, and nothing is published."""
    body = json.dumps(publish(properties)).encode()  # \ud800 escaped: httpx's json= cannot send it
    await assert_refused(await api.post("/v4/mqtt/publish", content=body), named)
    assert broker.stats().message_in == 0


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [("subscription_identifier", 5, "per subscription"), ("topic_alias", 1, "one MQTT connection")],
)
async def test_properties_without_meaning_over_http_are_refused_with_the_reason(
    api: httpx.AsyncClient, key: str, value: int, reason: str
) -> None:
    """subscription_identifier and topic_alias are 400/108 saying why an HTTP publish cannot set them."""
    await assert_refused(await api.post("/v4/mqtt/publish", json=publish({key: value})), key, reason)


async def test_utf8_indicator_with_a_payload_that_is_not_utf8_is_refused(api: httpx.AsyncClient) -> None:
    """payload_format_indicator 1 with a (base64-decoded) payload that is not UTF-8 is 400/108."""
    body = publish({"payload_format_indicator": 1}, payload="/w==", encoding="base64")  # b"\xff"
    await assert_refused(await api.post("/v4/mqtt/publish", json=body), "not UTF-8")


async def test_nan_in_properties_is_refused(api: httpx.AsyncClient) -> None:
    """NaN as a user property value (Python's JSON reader takes it; JSON has no NaN) is 400/108."""
    body = b'{"topic": "props/t", "payload": "x", "properties": {"user_properties": {"a": NaN}}}'
    await assert_refused(await api.post("/v4/mqtt/publish", content=body))


@pytest.mark.parametrize(
    "properties",
    [
        NANOMQ_EXAMPLE,
        {},
        {"payload_format_indicator": 0, "message_expiry_interval": 0},
        {"message_expiry_interval": 2**32 - 1, "response_topic": "replies/1", "correlation_data": "req\u00001"},
        {"user_properties": {"ratio": 1.5, "on": True, "off": False, "n": -3, "empty": ""}},
    ],
)
async def test_accepted_properties_publish_the_message(api: httpx.AsyncClient, properties: dict[str, Any]) -> None:
    """NanoMQ's documented example and every documented key with values of the right type are accepted."""
    response = await api.post("/v4/mqtt/publish", json=publish(properties))
    assert (response.status_code, response.json()) == (200, {"code": 0})


async def test_an_mqtt311_subscriber_gets_the_message_without_its_properties(
    broker: EdgeBroker, api: httpx.AsyncClient
) -> None:
    """A 3.1.1 subscriber gets a publish that carries properties as a plain message (properties
    are dropped towards 3.1.1), at the QoS and with the payload it would get without them."""
    async with mqtt_client(broker, "v311") as client:
        await client.subscribe("props/#", qos=1)
        body = publish({**NANOMQ_EXAMPLE, "message_expiry_interval": 60}, qos=1)
        assert (await api.post("/v4/mqtt/publish", json=body)).json() == {"code": 0}
        message = await next_message(client)
        assert (str(message.topic), message.payload, message.qos) == ("props/t", b"hello", 1)
        assert message.properties is None


async def test_batch_items_with_wrong_properties_get_108_and_the_others_are_published(
    broker: EdgeBroker, api: httpx.AsyncClient
) -> None:
    """In publish_batch each item's properties are checked on their own: a bad one is that item's
    108, items with good properties are published (0)."""
    items = [
        publish(NANOMQ_EXAMPLE, payload="1"),
        publish({"message_expiry_interval": "soon"}, payload="2"),
        publish({"topic_alias": 3}, payload="3"),
        publish({"user_properties": {"k": "v"}}, payload="4"),
    ]
    answer = (await api.post("/v4/mqtt/publish_batch", json=items)).json()
    assert [item["code"] for item in answer["data"]] == [0, 108, 108, 0]
    assert broker.stats().message_in == 2
