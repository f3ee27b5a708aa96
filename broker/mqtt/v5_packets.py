"""MQTT 5.0 packets after the CONNECT: reading what a client sends and encoding what the broker
sends (pure, no I/O; OASIS MQTT 5.0 chapter 3).

``split_packet`` (framing.py) has already cut the packet out and checked its fixed header; these
read the variable header, the properties (properties.py) and the payload, and raise
``ProtocolViolation`` with the reason code of the DISCONNECT the broker then sends: 0x81
(malformed) or 0x82 (protocol error).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from broker.mqtt.framing import ProtocolViolation
from broker.mqtt.properties import (
    MALFORMED,
    PROTOCOL_ERROR,
    PacketKind,
    Properties,
    PropertyError,
    decode_properties,
    encode_properties,
    encode_varint,
)
from broker.mqtt.topics import is_valid_topic_name

__all__ = [
    "NO_PROPERTIES",
    "NO_PUBLISH_PROPERTIES",
    "Publish5",
    "Subscription5",
    "encode_ack5",
    "encode_connack5",
    "encode_disconnect5",
    "encode_publish5",
    "encode_suback5",
    "encode_unsuback5",
    "parse_ack5",
    "parse_disconnect5",
    "parse_publish5",
    "parse_subscribe5",
    "parse_unsubscribe5",
]

NO_PROPERTIES = b"\x00"
"""An empty property block."""
NO_PUBLISH_PROPERTIES = Properties()
"""The properties of every PUBLISH that has none (one shared object: never changed)."""
_ACK_KINDS: dict[int, PacketKind] = {4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP"}


class Publish5(NamedTuple):
    """A PUBLISH from an MQTT 5 client; ``topic`` is "" when it names the topic by alias only."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int
    properties: Properties


class Subscription5(NamedTuple):
    """One filter of a SUBSCRIBE with its options (3.8.3.1)."""

    topic_filter: str
    qos: int
    no_local: bool
    retain_as_published: bool
    retain_handling: int


def _body_start(packet: bytes) -> int:
    index = 1
    while packet[index] & 0x80:
        index += 1
    return index + 1


def _properties(packet: bytes, offset: int, kind: PacketKind) -> tuple[Properties, int]:
    try:
        return decode_properties(packet, offset, kind)
    except PropertyError as exc:
        raise ProtocolViolation(f"{kind}: {exc}", exc.code) from None


def _string(packet: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset + 2 > len(packet):
        raise ProtocolViolation(f"{what} cut short", MALFORMED)
    (length,) = struct.unpack_from("!H", packet, offset)
    end = offset + 2 + length
    if end > len(packet):
        raise ProtocolViolation(f"{what} runs past the packet", MALFORMED)
    try:
        text = packet[offset + 2 : end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(f"{what} is not UTF-8 (1.5.4)", MALFORMED) from None
    if "\x00" in text:
        raise ProtocolViolation(f"{what} holds U+0000 (MQTT-1.5.4-2)", MALFORMED)
    return text, end


def _filter(packet: bytes, offset: int) -> tuple[str, int]:
    topic_filter, offset = _string(packet, offset, "topic filter")
    if not topic_filter:
        raise ProtocolViolation("empty topic filter (MQTT-4.7.3-1)", MALFORMED)
    return topic_filter, offset


def _packet_id(packet: bytes, offset: int, what: str) -> int:
    if offset + 2 > len(packet):
        raise ProtocolViolation(f"{what} without its packet identifier", MALFORMED)
    packet_id = int.from_bytes(packet[offset : offset + 2], "big")
    if not packet_id:
        raise ProtocolViolation(f"{what} with packet identifier 0 (MQTT-2.2.1-3)", PROTOCOL_ERROR)
    return packet_id


def parse_publish5(packet: bytes) -> Publish5:
    """Topic, payload, flags, packet id and properties of a PUBLISH (3.3)."""
    qos, retain = (packet[0] >> 1) & 0x03, bool(packet[0] & 1)
    if not qos and packet[0] & 0x08:
        raise ProtocolViolation("QoS 0 PUBLISH with DUP set (MQTT-3.3.1-2)", MALFORMED)
    topic, offset = _string(packet, _body_start(packet), "PUBLISH topic")
    if topic and not is_valid_topic_name(topic):
        raise ProtocolViolation(f"invalid PUBLISH topic {topic!r} (MQTT-3.3.2-2)", PROTOCOL_ERROR)
    packet_id = 0
    if qos:
        packet_id = _packet_id(packet, offset, "PUBLISH")
        offset += 2
    if offset < len(packet) and not packet[offset]:  # the usual case: an empty property block
        return Publish5(topic, packet[offset + 1 :], qos, retain, packet_id, NO_PUBLISH_PROPERTIES)
    properties, offset = _properties(packet, offset, "PUBLISH")
    if properties.subscription_identifiers:
        raise ProtocolViolation("PUBLISH from a client with a subscription identifier (MQTT-3.3.4-6)", PROTOCOL_ERROR)
    return Publish5(topic, packet[offset:], qos, retain, packet_id, properties)


def parse_ack5(packet: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK, PUBREC, PUBREL or PUBCOMP (3.4 to 3.7): the reason
    code is 0 when the packet has none; its properties are checked and not kept."""
    kind = _ACK_KINDS[packet[0] >> 4]
    start = _body_start(packet)
    packet_id = _packet_id(packet, start, kind)
    if len(packet) <= start + 2:
        return packet_id, 0
    reason = packet[start + 2]
    if len(packet) > start + 3:
        _, end = _properties(packet, start + 3, kind)
        if end != len(packet):
            raise ProtocolViolation(f"{kind} with bytes after its properties", MALFORMED)
    return packet_id, reason


def parse_subscribe5(packet: bytes) -> tuple[int, int | None, list[Subscription5]]:
    """(packet id, subscription identifier or None, filters with options) of a SUBSCRIBE (3.8)."""
    start = _body_start(packet)
    packet_id = _packet_id(packet, start, "SUBSCRIBE")
    properties, offset = _properties(packet, start + 2, "SUBSCRIBE")
    found: list[Subscription5] = []
    while offset < len(packet):
        topic_filter, offset = _filter(packet, offset)
        if offset >= len(packet):
            raise ProtocolViolation("SUBSCRIBE filter without its options byte", MALFORMED)
        options = packet[offset]
        offset += 1
        if options & 0xC0:
            raise ProtocolViolation("SUBSCRIBE options with reserved bits set (MQTT-3.8.3-5)", MALFORMED)
        if options & 0x03 == 3 or (options >> 4) & 0x03 == 3:
            raise ProtocolViolation("SUBSCRIBE with QoS 3 or retain handling 3 (3.8.3.1)", PROTOCOL_ERROR)
        no_local, retain_as_published = bool(options & 0x04), bool(options & 0x08)
        found.append(Subscription5(topic_filter, options & 0x03, no_local, retain_as_published, options >> 4))
    if not found:
        raise ProtocolViolation("SUBSCRIBE without a topic filter (MQTT-3.8.3-2)", PROTOCOL_ERROR)
    identifiers = properties.subscription_identifiers
    return packet_id, identifiers[0] if identifiers else None, found


def parse_unsubscribe5(packet: bytes) -> tuple[int, list[str]]:
    """(packet id, filters) of an UNSUBSCRIBE (3.10)."""
    start = _body_start(packet)
    packet_id = _packet_id(packet, start, "UNSUBSCRIBE")
    _, offset = _properties(packet, start + 2, "UNSUBSCRIBE")
    filters: list[str] = []
    while offset < len(packet):
        topic_filter, offset = _filter(packet, offset)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolViolation("UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)", PROTOCOL_ERROR)
    return packet_id, filters


def parse_disconnect5(packet: bytes) -> tuple[int, Properties]:
    """(reason code, properties) of a DISCONNECT from the client (3.14)."""
    start = _body_start(packet)
    if len(packet) <= start:
        return 0, Properties()
    reason = packet[start]
    if len(packet) == start + 1:
        return reason, Properties()
    properties, end = _properties(packet, start + 1, "DISCONNECT")
    if end != len(packet):
        raise ProtocolViolation("DISCONNECT with bytes after its properties", MALFORMED)
    return reason, properties


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def encode_connack5(session_present: bool, reason: int, properties: Properties) -> bytes:
    """A CONNACK (3.2) with its reason code and properties."""
    return _packet(0x20, bytes((int(session_present), reason)) + encode_properties(properties))


def encode_publish5(
    topic: str, payload: bytes, qos: int, packet_id: int, retain: bool, properties: bytes, *, dup: bool = False
) -> bytes:
    """A PUBLISH (3.3) whose property block (length first) is ``properties``."""
    topic_bytes = topic.encode("utf-8")
    head = struct.pack("!H", len(topic_bytes)) + topic_bytes + (struct.pack("!H", packet_id) if qos else b"")
    first = 0x30 | qos << 1 | int(retain) | (0x08 if dup and qos else 0)
    size = len(head) + len(properties) + len(payload)
    return b"".join((bytes((first,)), encode_varint(size), head, properties, payload))


def encode_ack5(kind: int, packet_id: int, reason: int) -> bytes:
    """A PUBACK, PUBREC, PUBREL or PUBCOMP (``kind`` 4 to 7); the short form for reason 0."""
    first = kind << 4 | (0x02 if kind == 6 else 0)
    if not reason:
        return bytes((first, 2)) + packet_id.to_bytes(2, "big")
    return bytes((first, 3)) + packet_id.to_bytes(2, "big") + bytes((reason,))


def encode_suback5(packet_id: int, reasons: list[int]) -> bytes:
    """A SUBACK (3.9): one reason code per filter, no properties."""
    return _packet(0x90, packet_id.to_bytes(2, "big") + NO_PROPERTIES + bytes(reasons))


def encode_unsuback5(packet_id: int, reasons: list[int]) -> bytes:
    """An UNSUBACK (3.11): one reason code per filter, no properties."""
    return _packet(0xB0, packet_id.to_bytes(2, "big") + NO_PROPERTIES + bytes(reasons))


def encode_disconnect5(reason: int) -> bytes:
    """A DISCONNECT from the server (3.14) with its reason code, no properties."""
    return bytes((0xE0, 1, reason)) if reason else b"\xe0\x00"
