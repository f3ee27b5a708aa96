"""Raw MQTT 5.0 packets for the conformance tests: what a client sends (including malformed input,
built by hand) and what the broker sends, read with its properties.

Properties are written and read with broker/mqtt/properties.py (its own tests check it); the rest
of each packet follows OASIS MQTT 5.0 section 3. ``V5Client`` is a raw connection that speaks these.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.mqtt.properties import PacketKind, Properties, decode_properties, encode_properties
from tests.helpers import WAIT
from tests.mqtt_packets import RawClient, packet

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

NAMES: dict[int, PacketKind] = {
    CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC", PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP", SUBACK: "SUBACK", UNSUBACK: "UNSUBACK", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}  # fmt: skip

PropertyBlock = Properties | bytes | None
"""Properties to encode, an already encoded block (for malformed ones), or none (an empty block)."""


def props(user_properties: Iterable[tuple[str, str]] = (), **values: int | str | bytes) -> Properties:
    """A property set from keyword arguments named as in broker/mqtt/properties.py."""
    return Properties(dict(values), list(user_properties))


def _block(properties: PropertyBlock) -> bytes:
    if isinstance(properties, bytes):
        return properties
    return encode_properties(properties or Properties())


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


@dataclass(frozen=True)
class Will:
    """The will of a CONNECT (3.1.3.2)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: PropertyBlock = None


def connect(
    client_id: str,
    *,
    clean_start: bool = True,
    keep_alive: int = 60,
    properties: PropertyBlock = None,
    will: Will | None = None,
    username: str | None = None,
) -> bytes:
    """A version 5 CONNECT (3.1)."""
    flags = 0x02 if clean_start else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        payload += _block(will.properties) + _string(will.topic) + _string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    variable = _string("MQTT") + bytes([5, flags]) + struct.pack("!H", keep_alive) + _block(properties)
    return packet(0x10, variable + payload)


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int = 0,
    retain: bool = False,
    properties: PropertyBlock = None,
) -> bytes:
    """A PUBLISH (3.3); the packet id is written for QoS 1 and 2 only."""
    first = 0x30 | qos << 1 | (1 if retain else 0)
    variable = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + _block(properties)
    return packet(first, variable + payload)


def ack(kind: int, packet_id: int, reason: int = 0, properties: PropertyBlock = None) -> bytes:
    """A PUBACK, PUBREC, PUBREL or PUBCOMP (3.4 to 3.7) with a reason code and properties."""
    first = kind << 4 | (0x02 if kind == PUBREL else 0)
    return packet(first, struct.pack("!HB", packet_id, reason) + _block(properties))


def options(
    qos: int = 0, *, no_local: bool = False, retain_as_published: bool = False, retain_handling: int = 0
) -> int:
    """The Subscription Options byte (3.8.3.1)."""
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | retain_handling << 4


def subscribe(packet_id: int, *filters: tuple[str, int], properties: PropertyBlock = None) -> bytes:
    """A SUBSCRIBE (3.8) with (topic filter, subscription options) pairs."""
    payload = b"".join(_string(topic) + bytes([opts]) for topic, opts in filters)
    return packet(0x82, struct.pack("!H", packet_id) + _block(properties) + payload)


def unsubscribe(packet_id: int, *filters: str, properties: PropertyBlock = None) -> bytes:
    """An UNSUBSCRIBE (3.10)."""
    return packet(0xA2, struct.pack("!H", packet_id) + _block(properties) + b"".join(map(_string, filters)))


def disconnect(reason: int = 0, properties: PropertyBlock = None) -> bytes:
    """A DISCONNECT (3.14) with a reason code and properties."""
    return packet(0xE0, bytes([reason]) + _block(properties))


@dataclass
class Packet:
    """A packet the broker sent, with the fields its type has."""

    kind: int
    flags: int
    body: bytes
    packet_id: int = 0
    reason: int = 0
    reasons: list[int] = field(default_factory=list)  # SUBACK, UNSUBACK
    session_present: bool = False  # CONNACK
    topic: str = ""  # PUBLISH
    payload: bytes = b""
    properties: Properties = field(default_factory=Properties)

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def retain(self) -> bool:
        return bool(self.flags & 1)

    def describe(self) -> str:
        return f"packet type {self.kind} reason {self.reason:#x} {self.properties}"


def parse(first: int, body: bytes) -> Packet:
    """Read one packet from its first byte and body; an invalid property block fails the test."""
    result = Packet(first >> 4, first & 0x0F, body)
    kind = result.kind
    if kind == CONNACK:
        result.session_present, result.reason = bool(body[0] & 1), body[1]
        result.properties, _ = decode_properties(body, 2, "CONNACK")
    elif kind == PUBLISH:
        (length,) = struct.unpack_from("!H", body)
        result.topic = body[2 : 2 + length].decode("utf-8")
        offset = 2 + length
        if result.qos:
            (result.packet_id,) = struct.unpack_from("!H", body, offset)
            offset += 2
        result.properties, offset = decode_properties(body, offset, "PUBLISH")
        result.payload = body[offset:]
    elif kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        (result.packet_id,) = struct.unpack_from("!H", body)
        if len(body) > 2:  # 3.4.2.1: no reason code means 0x00
            result.reason = body[2]
        if len(body) > 3:
            result.properties, _ = decode_properties(body, 3, NAMES[kind])
    elif kind in (SUBACK, UNSUBACK):
        (result.packet_id,) = struct.unpack_from("!H", body)
        result.properties, offset = decode_properties(body, 2, NAMES[kind])
        result.reasons = list(body[offset:])
    elif kind in (DISCONNECT, AUTH):
        result.reason = body[0] if body else 0
        if len(body) > 1:
            result.properties, _ = decode_properties(body, 1, NAMES[kind])
    return result


class V5Client(RawClient):
    """A raw connection that sends bytes and reads the broker's packets parsed as MQTT 5."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, address: tuple[str, int]) -> AsyncIterator[V5Client]:
        """A connection to ``address``, closed on exit."""
        reader, writer = await asyncio.open_connection(*address)
        client = cls(reader, writer)
        try:
            yield client
        finally:
            await client.close()

    async def next(self, timeout: float = WAIT) -> Packet:
        """The next packet the broker sends."""
        return parse(*await self.read_packet(timeout))

    async def expect(self, kind: int, timeout: float = WAIT) -> Packet:
        """The next packet, which must be of type ``kind``."""
        received = await self.next(timeout)
        assert received.kind == kind, f"expected packet type {kind}, got {received.describe()}"
        return received

    async def connect(self, client_id: str, **fields: Any) -> Packet:
        """Send a CONNECT (``fields`` as for ``connect``) and return the CONNACK."""
        await self.send(connect(client_id, **fields))
        return await self.expect(CONNACK)

    async def subscribe(
        self, *filters: tuple[str, int], packet_id: int = 1, properties: PropertyBlock = None
    ) -> Packet:
        """Subscribe and return the SUBACK."""
        await self.send(subscribe(packet_id, *filters, properties=properties))
        return await self.expect(SUBACK)

    async def publish_acked(self, topic: str, payload: bytes, *, packet_id: int = 1, **fields: Any) -> Packet:
        """Publish at QoS 1 and return the PUBACK (nothing else may arrive before it)."""
        await self.send(publish(topic, payload, qos=1, packet_id=packet_id, **fields))
        return await self.expect(PUBACK)

    async def nothing_within(self, seconds: float) -> None:
        """Assert that no packet arrives within ``seconds`` (proving an absence needs a bounded wait)."""
        try:
            received = await self.next(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {received.describe()}")

    async def refused_with(self, *codes: int) -> int:
        """The broker sends DISCONNECT with one of ``codes`` and closes; returns the code."""
        try:
            while (received := await self.next()).kind == PUBACK:
                pass  # an acknowledgement of an earlier good packet may come first
        except (EOFError, ConnectionResetError):
            raise AssertionError("the broker closed the connection without a DISCONNECT") from None
        assert received.kind == DISCONNECT, f"expected DISCONNECT, got {received.describe()}"
        assert received.reason in codes, f"DISCONNECT {received.reason:#x}, expected one of {codes}"
        assert await self.closed_by_peer()
        return received.reason


@contextlib.asynccontextmanager
async def connected(address: tuple[str, int], client_id: str, **fields: Any) -> AsyncIterator[V5Client]:
    """A v5 connection whose CONNECT was accepted (CONNACK 0x00)."""
    async with V5Client.open(address) as client:
        connack = await client.connect(client_id, **fields)
        assert connack.reason == 0, f"CONNACK {connack.reason:#x}"
        yield client
