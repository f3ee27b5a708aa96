"""Reading what an MQTT 5 upstream sends to a bridge (pure, no I/O).

The bridge's link (broker/bridges/link.py) writes its MQTT 5 packets with broker/mqtt/encoding.py
and reads the upstream's here: the CONNACK's reason code and the limits its properties set
(``UpstreamLimits``), PUBLISH with its properties, the reason codes of acknowledgements, SUBACK
and DISCONNECT. Malformed input raises ``ValueError`` (``PropertyError`` for a property block),
which ends the link.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from broker.mqtt.properties import Properties, decode_properties, decode_varint
from broker.mqtt.topics import is_valid_topic_name

__all__ = [
    "UpstreamLimits",
    "ack_reason",
    "body_start",
    "read_connack",
    "read_disconnect",
    "read_publish",
    "read_suback",
    "reason_name",
]

_REASONS = {
    0x00: "success",
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x90: "topic name invalid",
    0x92: "packet identifier not found",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9F: "connection rate exceeded",
}


def reason_name(code: int, reason_string: str | None = None) -> str:
    """A reason code for the log: ``0x87 not authorized`` (and the upstream's reason string)."""
    text = f"0x{code:02X} {_REASONS.get(code, 'unknown reason')}"
    return f"{text} ({reason_string})" if reason_string else text


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """What the upstream's CONNACK allows the bridge (3.2.2.3); the defaults are MQTT 3.1.1's."""

    receive_maximum: int = 65535
    """QoS 1/2 PUBLISHes the bridge may have unacknowledged at once."""
    maximum_packet_size: int | None = None
    """The largest packet the upstream accepts (None: no limit but the protocol's)."""
    maximum_qos: int = 2
    retain_available: bool = True
    server_keep_alive: int | None = None
    """The keep-alive the bridge must use instead of its own (None: its own)."""

    @classmethod
    def from_properties(cls, properties: Properties) -> UpstreamLimits:
        def number(name: str, default: int | None) -> int | None:
            value = properties.get(name)
            return value if isinstance(value, int) else default

        return cls(
            receive_maximum=number("receive_maximum", 65535) or 65535,
            maximum_packet_size=number("maximum_packet_size", None),
            maximum_qos=number("maximum_qos", 2) or 0,
            retain_available=bool(number("retain_available", 1)),
            server_keep_alive=number("server_keep_alive", None),
        )


def body_start(packet: bytes) -> int:
    """Where a whole packet's variable header starts (after its remaining length)."""
    return decode_varint(packet, 1)[1]


def read_connack(packet: bytes) -> tuple[bool, int, Properties]:
    """(session present, reason code, properties) of an MQTT 5 CONNACK."""
    start = body_start(packet)
    if len(packet) < start + 3:
        raise ValueError("CONNACK cut short")
    properties, _ = decode_properties(packet, start + 2, "CONNACK")
    return bool(packet[start] & 1), packet[start + 1], properties


def read_publish(packet: bytes) -> tuple[str, bytes, int, bool, int, Properties]:
    """(topic, payload, qos, retain, packet id or 0, properties) of an MQTT 5 PUBLISH."""
    offset = body_start(packet)
    if len(packet) < offset + 2:
        raise ValueError("PUBLISH cut short")
    (length,) = struct.unpack_from("!H", packet, offset)
    offset += 2
    topic = packet[offset : offset + length].decode("utf-8")
    offset += length
    qos = (packet[0] >> 1) & 0x03
    packet_id = 0
    if qos:
        if len(packet) < offset + 2:
            raise ValueError("PUBLISH cut short")
        (packet_id,) = struct.unpack_from("!H", packet, offset)
        offset += 2
    properties, offset = decode_properties(packet, offset, "PUBLISH")
    if properties.get("topic_alias") is not None:  # the bridge's CONNECT allows none (3.3.2.3.4)
        raise ValueError("PUBLISH with a topic alias, which the bridge did not allow")
    if not is_valid_topic_name(topic):
        raise ValueError(f"PUBLISH with the invalid topic name {topic!r}")
    return topic, packet[offset:], qos, bool(packet[0] & 1), packet_id, properties


def ack_reason(packet: bytes) -> tuple[int, int]:
    """(packet id, reason code) of an MQTT 5 PUBACK, PUBREC, PUBREL or PUBCOMP (Success when
    the reason code is left out, 3.4.2.1)."""
    start = body_start(packet)
    (packet_id,) = struct.unpack_from("!H", packet, start)
    return packet_id, packet[start + 2] if len(packet) > start + 2 else 0


def read_suback(packet: bytes) -> tuple[int, list[int]]:
    """(packet id, reason codes) of an MQTT 5 SUBACK or UNSUBACK."""
    start = body_start(packet)
    (packet_id,) = struct.unpack_from("!H", packet, start)
    _, offset = decode_properties(packet, start + 2, "SUBACK")
    return packet_id, list(packet[offset:])


def read_disconnect(packet: bytes) -> tuple[int, str | None]:
    """(reason code, reason string) of an MQTT 5 DISCONNECT from the upstream."""
    start = body_start(packet)
    if len(packet) <= start:
        return 0, None
    reason = packet[start]
    if len(packet) <= start + 1:
        return reason, None
    properties, _ = decode_properties(packet, start + 1, "DISCONNECT")
    text = properties.get("reason_string")
    return reason, text if isinstance(text, str) else None
