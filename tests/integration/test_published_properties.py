"""Messages published from outside MQTT with MQTT 5 properties (v4 publish and publish_batch,
the embedding API), as a real MQTT 5 client (paho-mqtt 2) receives them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from broker import ThreadedBroker
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties
from tests.helpers import WAIT
from tests.integration.paho5_client import Paho5Client, connect_properties, properties_of

EVERY_PROPERTY = {
    "payload_format_indicator": 1,
    "message_expiry_interval": 60,
    "content_type": "application/json",
    "response_topic": "replies/sub5",
    "correlation_data": "request-7",
    "user_properties": {"id": 10010, "name": "emqx", "ratio": 1.5, "on": True},
}


@pytest.fixture
def http(mqtt_broker: ThreadedBroker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mqtt_broker.api_url, auth=mqtt_broker.admin_auth, timeout=WAIT) as client:
        yield client


@pytest.fixture
def subscriber(mqtt_broker: ThreadedBroker) -> Iterator[Paho5Client]:
    """An MQTT 5 client subscribed to props/# at QoS 1."""
    client = Paho5Client((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "sub5")
    client.connect()
    try:
        client.subscribe("props/#", qos=1)
        yield client
    finally:
        client.close()


def wait_offline(http: httpx.Client, client_id: str) -> None:
    """Wait until the admin API shows ``client_id``'s session offline (the broker saw its DISCONNECT)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # each round is an HTTP round trip
        shown = http.get(f"/v4/clients/{client_id}").json()["data"]
        if shown and shown[0]["conn_state"] == "disconnected":
            return
    raise AssertionError(f"{client_id} did not go offline within {WAIT}s")


def published(http: httpx.Client, properties: dict[str, Any], payload: str = '{"t": 21}') -> None:
    body = {"topic": "props/t", "payload": payload, "qos": 1, "properties": properties}
    response = http.post("/v4/mqtt/publish", json=body)
    assert (response.status_code, response.json()) == (200, {"code": 0}), response.text


def test_every_forwarded_property_reaches_an_mqtt5_subscriber(http: httpx.Client, subscriber: Paho5Client) -> None:
    """Payload format, content type, response topic, correlation data (the string's bytes) and
    user properties (numbers and booleans as NanoMQ's text, in order) arrive as given (MQTT 5.0
    3.3.2.3), with the message expiry interval."""
    published(http, EVERY_PROPERTY)
    message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos) == ("props/t", b'{"t": 21}', 1)
    received = properties_of(message)
    assert 59 <= received.pop("MessageExpiryInterval") <= 60
    assert received == {
        "PayloadFormatIndicator": 1,
        "ContentType": "application/json",
        "ResponseTopic": "replies/sub5",
        "CorrelationData": b"request-7",
        "UserProperty": [("id", "10010"), ("name", "emqx"), ("ratio", "1.500000"), ("on", "true")],
    }


def test_a_publish_without_properties_brings_none(http: httpx.Client, subscriber: Paho5Client) -> None:
    """An empty properties object adds nothing: the v5 subscriber's PUBLISH has no forwarded property."""
    published(http, {})
    assert properties_of(subscriber.next_message()) == {}


def test_an_expiry_interval_of_0_means_none(http: httpx.Client, subscriber: Paho5Client) -> None:
    """message_expiry_interval 0 is no expiry (as for an MQTT PUBLISH): delivered, with no interval."""
    published(http, {"message_expiry_interval": 0, "content_type": "text/plain"})
    assert properties_of(subscriber.next_message()) == {"ContentType": "text/plain"}


def test_the_expiry_interval_is_reduced_by_the_time_the_message_waited(
    mqtt_broker: ThreadedBroker, http: httpx.Client
) -> None:
    """A copy queued for an offline MQTT 5 session is sent on with the interval left (3.3.2.3.3)."""
    address = (mqtt_broker.mqtt_host, mqtt_broker.mqtt_port)
    away = Paho5Client(address, "away5")
    away.connect(properties=connect_properties(SessionExpiryInterval=300))
    away.subscribe("props/#", qos=1)
    away.close()
    wait_offline(http, "away5")
    started = time.monotonic()
    published(http, {"message_expiry_interval": 100})
    time.sleep(1.1)  # not a wait for an event: the wall clock has to move for the interval to shrink
    back = Paho5Client(address, "away5")
    back.connect(clean_start=False, properties=connect_properties(SessionExpiryInterval=300))
    try:
        message = back.next_message()
        waited = time.monotonic() - started
        assert message.payload == b'{"t": 21}'
        assert 100 - math.ceil(waited) <= properties_of(message)["MessageExpiryInterval"] <= 99
    finally:
        back.close()


def test_publish_batch_items_carry_their_own_properties(http: httpx.Client, subscriber: Paho5Client) -> None:
    """Each publish_batch item is delivered with its own properties; an item whose properties are
    refused (108) is not delivered."""
    items = [
        {"topic": "props/1", "payload": "one", "qos": 1, "properties": {"user_properties": {"n": "1"}}},
        {"topic": "props/2", "payload": "two", "qos": 1, "properties": {"topic_alias": 2}},
        {"topic": "props/3", "payload": "three", "qos": 1, "properties": {"content_type": "text/plain"}},
    ]
    answer = http.post("/v4/mqtt/publish_batch", json=items).json()
    assert [item["code"] for item in answer["data"]] == [0, 108, 0]
    first, second = subscriber.next_message(), subscriber.next_message()
    assert (first.topic, properties_of(first)) == ("props/1", {"UserProperty": [("n", "1")]})
    assert (second.topic, properties_of(second)) == ("props/3", {"ContentType": "text/plain"})


def test_the_threaded_broker_publishes_with_properties(mqtt_broker: ThreadedBroker, subscriber: Paho5Client) -> None:
    """ThreadedBroker.publish(properties=...) delivers them to an MQTT 5 subscriber."""
    properties = Properties({"content_type": "text/plain"}, [("k", "v")])
    mqtt_broker.publish("props/e", b"x", 1, properties=MessageProperties.from_properties(properties, time.time()))
    message = subscriber.next_message()
    assert (message.topic, properties_of(message)) == (
        "props/e",
        {"ContentType": "text/plain", "UserProperty": [("k", "v")]},
    )
