"""Direct writes: a connection's packets of one loop turn in one write, and PUBLISH packets
encoded once per routed message (no amqtt)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from broker.mqtt.framing import encode_publish
from broker.mqtt.message_properties import MessageProperties, property_block
from broker.mqtt.v5_packets import encode_publish5

__all__ = ["Outbox", "RoutedCopy"]

_OUTBOX_LIMIT = 64 * 1024  # bytes per write, and unsent bytes before a client's copies are queued as tasks


class Outbox:
    """Packets for one TCP connection, written together at the end of the event loop's turn.

    One write (one system call) carries the copies and acknowledgements of a turn (in pieces of
    ``_OUTBOX_LIMIT`` bytes when a turn makes more), instead of a write and a drain per packet
    as amqtt does. A client keeps up while the transport holds little that the socket did not
    take; the outbox's own bytes of this turn do not count against it.
    """

    __slots__ = ("_pending", "_transport")

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._pending = bytearray()

    def has_room(self) -> bool:
        """Whether the client keeps up: little is buffered for it and the connection is open."""
        transport = self._transport
        return not transport.is_closing() and transport.get_write_buffer_size() <= _OUTBOX_LIMIT

    def put(self, packet: bytes) -> None:
        """Send ``packet`` at the end of this loop turn, after what was put before it."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending += packet
        if len(self._pending) >= _OUTBOX_LIMIT:
            self.flush()

    def write_now(self, packet: bytes) -> None:
        """Send ``packet`` now, after what was put before it."""
        self.flush()
        if not self._transport.is_closing():
            self._transport.write(packet)

    def reroute(self, transport: asyncio.WriteTransport) -> None:
        """Write to ``transport`` from now on (a black-hole fault swaps in one that sends
        nothing); what was put before goes to the transport of its time."""
        self.flush()
        self._transport = transport

    def flush(self) -> None:
        """Write what was put so far now: before any other write, and before the connection closes."""
        if self._pending:
            data, self._pending = self._pending, bytearray()
            if not self._transport.is_closing():
                self._transport.write(data)


class RoutedCopy:
    """A message being routed; its QoS 0 packet is encoded at most once for all its subscribers
    (once for MQTT 3.1.1 ones, once for MQTT 5 ones without subscription options)."""

    __slots__ = ("_qos0", "_qos0_v5", "data", "properties", "retain", "topic")

    def __init__(
        self, topic: str, data: bytes, properties: MessageProperties | None = None, retain: bool = False
    ) -> None:
        self.topic, self.data, self.properties, self.retain = topic, data, properties, retain
        self._qos0 = self._qos0_v5 = b""

    def qos0_packet(self) -> bytes:
        if not self._qos0:
            self._qos0 = encode_publish(self.topic, self.data)
        return self._qos0

    def v5_packet(self, qos: int, packet_id: int, retain: bool, subscription_ids: Sequence[int], now: float) -> bytes:
        """The MQTT 5 PUBLISH of this copy (retain: as published, for retain-as-published)."""
        plain = not qos and not retain and not subscription_ids
        if plain and self._qos0_v5:
            return self._qos0_v5
        block = property_block(self.properties, now, subscription_ids)
        packet = encode_publish5(self.topic, self.data, qos, packet_id, retain, block)
        if plain and (self.properties is None or self.properties.expires_at is None):
            self._qos0_v5 = packet
        return packet
