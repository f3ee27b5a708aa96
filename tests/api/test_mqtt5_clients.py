"""MQTT 5 clients in v1 req 5 and v4 client objects: proto_ver 5 and their connection's MQTT 5
settings; MQTT 3.1.1 clients' objects stay NanoMQ's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from broker import ThreadedBroker
from tests.helpers import WAIT
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
