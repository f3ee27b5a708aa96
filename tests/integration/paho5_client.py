"""A paho-mqtt 2 MQTT 5 client on its own network thread that queues what it receives."""

from __future__ import annotations

import queue
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.helpers import WAIT

__all__ = ["FORWARDED", "Paho5Client", "connect_properties", "properties_of"]

FORWARDED = ("PayloadFormatIndicator", "MessageExpiryInterval", "ContentType", "ResponseTopic", "CorrelationData",
             "UserProperty")  # fmt: skip
"""paho's names of what a PUBLISH to a subscriber may carry from the publisher (MQTT 5.0 3.3.2.3)."""


def connect_properties(**values: int) -> Properties:
    """CONNECT properties by paho's names (SessionExpiryInterval=300, ReceiveMaximum=20...)."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


def properties_of(message: paho.MQTTMessage) -> dict[str, Any]:
    """The publisher's properties a received message carries, by paho's names (absent ones left out)."""
    properties: Any = message.properties
    return {name: getattr(properties, name) for name in FORWARDED if hasattr(properties, name)}


class Paho5Client:
    """paho's MQTT 5 client; ``connect`` and ``subscribe`` wait for the broker's answer, every
    message is queued in ``messages``. No automatic reconnect: a test reconnects on purpose."""

    def __init__(self, address: tuple[str, int], client_id: str) -> None:
        self.address = address
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, reconnect_on_failure=False
        )
        self.connacks: queue.Queue[tuple[str, Any]] = queue.Queue()  # (reason, CONNACK properties)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, reason, properties: self.connacks.put((str(reason), properties))
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    def connect(self, *, clean_start: bool = True, properties: Properties | None = None) -> Any:
        """Connect, wait for an accepting CONNACK and return its properties."""
        self.client.connect(*self.address, keepalive=60, clean_start=clean_start, properties=properties)
        self.client.loop_start()
        try:
            reason, connack = self.next(self.connacks)
            assert reason == "Success", reason
        except BaseException:
            self.client.loop_stop()  # no paho thread outlives a failed test
            raise
        return connack

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe and wait for a SUBACK granting it."""
        answers: queue.Queue[list[Any]] = queue.Queue()
        self.client.on_subscribe = lambda _c, _u, _mid, reasons, _p: answers.put(reasons)
        self.client.subscribe(topic_filter, qos)
        (reason,) = self.next(answers)
        assert not reason.is_failure, reason

    def next_message(self) -> paho.MQTTMessage:
        """The next message received, within the test wait limit."""
        message: paho.MQTTMessage = self.next(self.messages)
        return message

    @staticmethod
    def next(items: queue.Queue[Any]) -> Any:
        return items.get(timeout=WAIT)

    def close(self) -> None:
        """Disconnect (normal disconnection) and stop paho's thread."""
        self.client.disconnect()
        self.client.loop_stop()
