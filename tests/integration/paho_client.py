"""A paho-mqtt 2 client on its own network thread that records what it sees, for fault tests."""

from __future__ import annotations

import queue
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import WAIT

__all__ = ["PahoClient"]


class PahoClient:
    """paho's client with every CONNACK, disconnect, message and acknowledged publish queued.

    paho reconnects by itself after a refusal or a lost connection (from 0.1 s on here).
    """

    def __init__(self, address: tuple[str, int], client_id: str, *, keepalive: int = 60, clean: bool = True) -> None:
        self.address, self.keepalive = address, keepalive
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]  # floats work
        self.connacks: queue.Queue[str] = queue.Queue()  # paho's names: "Success", "Not authorized"...
        self.disconnects: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, code, _p: self.connacks.put(str(code))
        self.client.on_disconnect = lambda _c, _u, _f, code, _p: self.disconnects.put(str(code))
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    def start(self) -> None:
        """Connect in the background (paho's thread); see ``connacks``."""
        self.client.connect_async(*self.address, keepalive=self.keepalive)
        self.client.loop_start()

    def connect(self) -> None:
        """Connect and wait for an accepting CONNACK."""
        self.start()
        assert self.next(self.connacks) == "Success"

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK."""
        subscribed: queue.Queue[Any] = queue.Queue()
        self.client.on_subscribe = lambda *args: subscribed.put(args)
        self.client.subscribe(topic_filter, qos)
        self.next(subscribed)

    @staticmethod
    def next(items: queue.Queue[Any]) -> Any:
        """The next item of one of the queues, within the test wait limit."""
        return items.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
