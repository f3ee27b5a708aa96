"""The thread-hosted broker's outages, seen by paho-mqtt: stop/start and restart on the same port."""

from __future__ import annotations

from broker import ThreadedBroker
from tests.integration.paho_client import PahoClient


def test_paho_reconnects_after_stop_and_start(mqtt_broker: ThreadedBroker) -> None:
    """stop() ends paho's connection; start() listens on the same port and paho's reconnect is accepted."""
    port = mqtt_broker.mqtt_port
    client = PahoClient((mqtt_broker.mqtt_host, port), "app")
    client.connect()
    try:
        mqtt_broker.stop()
        assert client.next(client.disconnects) == "Unspecified error"  # paho's name for a lost connection
        mqtt_broker.start()
        assert mqtt_broker.mqtt_port == port
        assert client.next(client.connacks) == "Success"
        mqtt_broker.wait_for_client("app")
    finally:
        client.close()


def test_paho_resumes_its_session_after_restart(mqtt_broker: ThreadedBroker) -> None:
    """restart() keeps the session: a QoS 1 message published while paho is away reaches it on reconnect."""
    client = PahoClient((mqtt_broker.mqtt_host, mqtt_broker.mqtt_port), "app", clean=False)
    client.connect()
    try:
        client.subscribe("orders/#", qos=1)
        mqtt_broker.restart()
        mqtt_broker.publish("orders/1", b"kept", qos=1)
        assert client.next(client.connacks) == "Success"
        assert client.next(client.messages).payload == b"kept"
    finally:
        client.close()
