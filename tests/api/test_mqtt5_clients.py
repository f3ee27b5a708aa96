"""MQTT 5 clients in v1 req 5 and v4 client objects: proto_ver 5 and their connection's MQTT 5
settings; MQTT 3.1.1 clients' objects stay NanoMQ's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from broker import ThreadedBroker
from tests.helpers import WAIT
from tests.integration.paho5_client import Paho5Client, connect_properties
from tests.integration.paho_client import PahoClient

V5_FIELDS = {"session_expiry_interval", "receive_maximum", "maximum_packet_size", "topic_alias_maximum"}
NANOMQ_V1_CLIENT = {"client_id", "username", "keepalive", "protocol", "connect_status", "message_receive"}


@pytest.fixture
def http(mqtt_broker: ThreadedBroker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mqtt_broker.api_url, auth=mqtt_broker.admin_auth, timeout=WAIT) as client:
        yield client


def v4_client(http: httpx.Client, client_id: str) -> dict[str, Any]:
    (shown,) = http.get(f"/v4/clients/{client_id}").json()["data"]
    assert isinstance(shown, dict)
    return shown


def v1_client(http: httpx.Client, client_id: str) -> dict[str, Any]:
    answer = http.post("/v1", json={"req": 5, "seq": 1}).json()
    (shown,) = [c for c in answer["data"] if c["client_id"] == client_id]
    assert isinstance(shown, dict)
    return shown


def test_an_mqtt5_client_shows_proto_ver_5_and_its_settings(mqtt_broker: ThreadedBroker, http: httpx.Client) -> None:
    """v4 shows proto_ver 5 and the session expiry, receive maximum, maximum packet size and topic
    alias maximum the client's CONNECT set; v1 req 5 shows protocol 5 and the same."""
    client = Paho5Client((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "five")
    asked = connect_properties(
        SessionExpiryInterval=300, ReceiveMaximum=20, MaximumPacketSize=4096, TopicAliasMaximum=8
    )
    client.connect(properties=asked)
    mqtt_broker.wait_for_client("five")
    try:
        settings = {"session_expiry_interval": 300, "receive_maximum": 20, "maximum_packet_size": 4096,
                    "topic_alias_maximum": 8}  # fmt: skip
        shown = v4_client(http, "five")
        assert (shown["proto_name"], shown["proto_ver"]) == ("MQTT", 5)
        assert {name: shown[name] for name in V5_FIELDS} == settings
        old = v1_client(http, "five")
        assert old["protocol"] == 5
        assert {name: old[name] for name in V5_FIELDS} == settings
    finally:
        client.close()


def test_an_mqtt5_client_that_sets_nothing_shows_the_defaults(mqtt_broker: ThreadedBroker, http: httpx.Client) -> None:
    """With no CONNECT properties: session expiry 0, receive maximum 65535, no packet size limit
    (null), topic alias maximum 0 (MQTT 5.0 3.1.2.11)."""
    client = Paho5Client((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "plain5")
    client.connect()
    mqtt_broker.wait_for_client("plain5")
    try:
        shown = v4_client(http, "plain5")
        assert {name: shown[name] for name in V5_FIELDS} == {
            "session_expiry_interval": 0, "receive_maximum": 65_535, "maximum_packet_size": None,
            "topic_alias_maximum": 0,
        }  # fmt: skip
    finally:
        client.close()


def test_the_proto_ver_filter_tells_mqtt5_from_mqtt311(mqtt_broker: ThreadedBroker, http: httpx.Client) -> None:
    """?proto_ver=5 lists the MQTT 5 client only, ?proto_ver=4 the 3.1.1 one only."""
    address = (mqtt_broker.mqtt_host, mqtt_broker.mqtt_port)
    five, four = Paho5Client(address, "five"), PahoClient(address, "four")
    five.connect()
    four.connect()
    mqtt_broker.wait_for_client("five")
    mqtt_broker.wait_for_client("four")
    try:
        for version, expected in (("5", ["five"]), ("4", ["four"])):
            listed = http.get("/v4/clients", params={"proto_ver": version}).json()["data"]
            assert [c["client_id"] for c in listed] == expected
    finally:
        five.close()
        four.close()


def test_an_mqtt311_client_shows_no_mqtt5_field(mqtt_broker: ThreadedBroker, http: httpx.Client) -> None:
    """A 3.1.1 client's req 5 entry has exactly NanoMQ's six keys and its v4 object none of the
    MQTT 5 fields (NanoMQ shows none for any client; edgemq adds them for MQTT 5 clients only)."""
    client = PahoClient((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "four")
    client.connect()
    mqtt_broker.wait_for_client("four")
    try:
        assert set(v1_client(http, "four")) == NANOMQ_V1_CLIENT
        shown = v4_client(http, "four")
        assert shown["proto_ver"] == 4
        assert set(shown) & V5_FIELDS == set()
    finally:
        client.close()
