"""Reading whole MQTT 3.1.1 packets from a byte stream and rejecting malformed ones (pure, no amqtt).

edgemq reads each packet completely before amqtt parses it, so that it can
- refuse what amqtt would acknowledge, forward or wait for forever (sections 2.2, 3.3.1.2,
  3.3.2.1, 3.8.3, 3.10.3, 4.7.3): bad remaining lengths, reserved packet types, wrong fixed
  header flags, QoS 3, invalid topic names, SUBSCRIBE/UNSUBSCRIBE without a filter;
- enforce ``mqtt.max_packet_size`` before buffering a large body;
- read in chunks and split them into packets without an await per field (see FramedReader).
"""

from __future__ import annotations

import struct

__all__ = [
    "CONNECT",
    "ProtocolViolation",
    "encode_publish",
    "fast_publish",
    "parse_publish",
    "remaining_length",
    "split_packet",
]

CONNECT, PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE = 1, 3, 6, 8, 10
_FLAGS_TWO = {PUBREL, SUBSCRIBE, UNSUBSCRIBE}  # fixed header flags must be 0b0010 (2.2.2)


class ProtocolViolation(Exception):
    """The peer broke the protocol; the connection must be closed."""


def _check_topic_name(body: bytes) -> None:
    if len(body) < 2:
        raise ProtocolViolation("PUBLISH without a topic name")
    (length,) = struct.unpack_from("!H", body)
    raw = body[2 : 2 + length]
    if len(raw) != length:
        raise ProtocolViolation("PUBLISH topic length beyond the packet")
    try:
        topic = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation("PUBLISH topic is not UTF-8 (1.5.3)") from None
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise ProtocolViolation(f"invalid PUBLISH topic {topic!r} (3.3.2.1, 4.7.3)")


def _check_subscriptions(body: bytes) -> None:
    """Every (filter, requested QoS) pair is complete and the QoS byte is 0, 1 or 2 (3.8.3-4)."""
    offset = 2
    while offset < len(body):
        if offset + 2 > len(body):
            raise ProtocolViolation("SUBSCRIBE filter length beyond the packet")
        (length,) = struct.unpack_from("!H", body, offset)
        offset += 2 + length
        if offset >= len(body):
            raise ProtocolViolation("SUBSCRIBE filter without its QoS byte")
        if body[offset] > 2:
            raise ProtocolViolation(f"SUBSCRIBE with requested QoS byte {body[offset]:#x} (3.8.3-4)")
        offset += 1


def _check(first: int, body: bytes) -> None:
    kind, flags = first >> 4, first & 0x0F
    if kind in (0, 15):
        raise ProtocolViolation(f"reserved packet type {kind}")
    if kind == PUBLISH:
        if (flags >> 1) & 0x03 == 3:
            raise ProtocolViolation("PUBLISH with QoS 3 (3.3.1.2)")
        _check_topic_name(body)
    elif kind in _FLAGS_TWO:
        if flags != 0x02:
            raise ProtocolViolation(f"packet type {kind} with flags {flags:#x} (2.2.2)")
        if kind in (SUBSCRIBE, UNSUBSCRIBE) and len(body) <= 2:
            raise ProtocolViolation("SUBSCRIBE or UNSUBSCRIBE without a topic filter (3.8.3, 3.10.3)")
        if kind == SUBSCRIBE:
            _check_subscriptions(body)
    elif flags != 0:
        raise ProtocolViolation(f"packet type {kind} with flags {flags:#x} (2.2.2)")


def split_packet(
    buffer: bytes | bytearray, start: int, max_size: int, *, first_packet: bool
) -> tuple[bytes, int] | None:
    """The whole packet at ``buffer[start:]`` (fixed header included), checked, and the offset
    after it; None while more bytes are needed. ProtocolViolation if malformed or too large,
    raised as soon as the fixed header shows it (before a large body is buffered)."""
    size = len(buffer)
    if size <= start:
        return None
    first = buffer[start]
    if first_packet and first != CONNECT << 4:
        raise ProtocolViolation("the first packet is not a CONNECT (3.1.0-1)")
    length, multiplier, index = 0, 1, start + 1
    while True:
        if index - start > 4:
            raise ProtocolViolation("remaining length longer than 4 bytes (2.2.3)")
        if index >= size:
            return None
        byte = buffer[index]
        index += 1
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            break
        multiplier *= 128
    end = index + length
    if end - start > max_size:
        raise ProtocolViolation(f"packet of {end - start} bytes exceeds max_packet_size {max_size}")
    if end > size:
        return None
    packet = bytes(buffer[start:end])
    _check(first, packet[index - start :])
    return packet, end


def remaining_length(n: int) -> bytes:
    """The variable-length encoding of a packet's remaining length (2.2.3)."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False) -> bytes:
    """A PUBLISH packet (DUP=0); a QoS 0 one is encoded once and written to every QoS 0 subscriber."""
    topic_bytes = topic.encode("utf-8")
    variable = struct.pack("!H", len(topic_bytes)) + topic_bytes + (struct.pack("!H", packet_id) if qos else b"")
    length = remaining_length(len(variable) + len(payload))
    return b"".join((bytes([0x30 | qos << 1 | int(retain)]), length, variable, payload))


def fast_publish(packet: bytes) -> bool:
    """Whether a packet from ``split_packet`` is a QoS 0 or QoS 1 PUBLISH."""
    return packet[0] >> 4 == PUBLISH and (packet[0] >> 1) & 0x03 < 2


def parse_publish(packet: bytes) -> tuple[str, bytes, int, bool, int]:
    """(topic, payload, qos, retain, packet id or 0) of a PUBLISH already checked by ``split_packet``."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    index += 1
    (length,) = struct.unpack_from("!H", packet, index)
    start = index + 2
    topic = packet[start : start + length].decode("utf-8")
    qos = (packet[0] >> 1) & 0x03
    packet_id = struct.unpack_from("!H", packet, start + length)[0] if qos else 0
    return topic, packet[start + length + (2 if qos else 0) :], qos, bool(packet[0] & 1), packet_id
