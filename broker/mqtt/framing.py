"""Reading whole MQTT 3.1.1 packets from a byte stream and rejecting malformed ones (pure, no amqtt).

edgemq reads each packet completely before amqtt parses it, so that it can
- refuse what amqtt would acknowledge, forward or wait for forever (sections 2.2, 3.3.1.2,
  3.3.2.1, 3.8.3, 3.10.3, 4.7.3): bad remaining lengths, reserved packet types, wrong fixed
  header flags, QoS 3, invalid topic names, SUBSCRIBE/UNSUBSCRIBE without a filter;
- enforce ``mqtt.max_packet_size`` before buffering a large body;
- read in chunks and split them into packets without an await per field (see FramedReader);
- read a CONNECT from its whole packet (``parse_connect``), so a short one never reads into the
  next packet, and the will flags are checked (3.1.2-13 to 15);
- encode the PUBLISH packets written directly (``encode_publish``) and read the fast path's;
  read SUBSCRIBE and UNSUBSCRIBE (``parse_subscribe``, ``parse_unsubscribe``) and encode their
  acknowledgements (``encode_suback``, ``encode_unsuback``).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from broker.mqtt.properties import Properties, PropertyError, decode_properties, encode_varint
from broker.mqtt.topics import is_valid_topic_name

__all__ = [
    "CONNECT",
    "Connect",
    "ProtocolViolation",
    "encode_publish",
    "encode_suback",
    "encode_unsuback",
    "is_publish",
    "parse_connect",
    "parse_publish",
    "parse_subscribe",
    "parse_unsubscribe",
    "pubrel_id",
    "remaining_length",
    "split_packet",
]

CONNECT, PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE = 1, 3, 6, 8, 10
_FLAGS_TWO = {PUBREL, SUBSCRIBE, UNSUBSCRIBE}  # fixed header flags must be 0b0010 (2.2.2)


class ProtocolViolation(Exception):
    """The peer broke the protocol; the connection must be closed (an MQTT 5 client first gets a
    DISCONNECT with ``code``: 0x81 malformed packet by default)."""

    def __init__(self, message: str, code: int = 0x81) -> None:
        super().__init__(message)
        self.code = code


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
    if not is_valid_topic_name(topic):
        raise ProtocolViolation(f"invalid PUBLISH topic {topic!r} (3.3.2.1, 4.7.3)")


def _check_filters(body: bytes, *, with_qos: bool) -> None:
    """Every filter of a SUBSCRIBE (``with_qos``: each followed by a requested QoS of 0, 1 or 2,
    3.8.3-4) or UNSUBSCRIBE is complete and at least one character long (4.7.3-1)."""
    offset = 2
    while offset < len(body):
        if offset + 2 > len(body):
            raise ProtocolViolation("topic filter length beyond the packet")
        (length,) = struct.unpack_from("!H", body, offset)
        if not length:
            raise ProtocolViolation("empty topic filter (4.7.3-1)")
        offset += 2 + length
        if not with_qos:
            if offset > len(body):
                raise ProtocolViolation("UNSUBSCRIBE filter beyond the packet")
            continue
        if offset >= len(body):
            raise ProtocolViolation("SUBSCRIBE filter without its QoS byte")
        if body[offset] > 2:
            raise ProtocolViolation(f"SUBSCRIBE with requested QoS byte {body[offset]:#x} (3.8.3-4)")
        offset += 1


def _check(first: int, body: bytes, v5: bool) -> None:
    """The fixed header, and for MQTT 3.1.1 the body; an MQTT 5 packet's body is read by
    v5_packets.py (its properties sit between the fields checked here)."""
    kind, flags = first >> 4, first & 0x0F
    if kind == 0 or (kind == 15 and not v5):  # 15 is AUTH in MQTT 5, reserved before
        raise ProtocolViolation(f"reserved packet type {kind}")
    if kind == PUBLISH:
        if (flags >> 1) & 0x03 == 3:
            raise ProtocolViolation("PUBLISH with QoS 3 (3.3.1.2)")
        if not v5:
            _check_topic_name(body)
    elif kind in _FLAGS_TWO:
        if flags != 0x02:
            raise ProtocolViolation(f"packet type {kind} with flags {flags:#x} (2.2.2)")
        if v5:
            return
        if kind in (SUBSCRIBE, UNSUBSCRIBE) and len(body) <= 2:
            raise ProtocolViolation("SUBSCRIBE or UNSUBSCRIBE without a topic filter (3.8.3, 3.10.3)")
        if kind in (SUBSCRIBE, UNSUBSCRIBE):
            _check_filters(body, with_qos=kind == SUBSCRIBE)
    elif flags != 0:
        raise ProtocolViolation(f"packet type {kind} with flags {flags:#x} (2.2.2)")


def split_packet(
    buffer: bytes | bytearray, start: int, max_size: int, *, first_packet: bool, v5: bool = False
) -> tuple[bytes, int] | None:
    """The whole packet at ``buffer[start:]`` (fixed header included), checked, and the offset
    after it; None while more bytes are needed. ProtocolViolation if malformed or too large,
    raised as soon as the fixed header shows it (before a large body is buffered; code 0x95,
    packet too large). ``v5``: the connection speaks MQTT 5."""
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
        raise ProtocolViolation(f"packet of {end - start} bytes exceeds max_packet_size {max_size}", 0x95)
    if end > size:
        return None
    packet = bytes(buffer[start:end])
    _check(first, packet[index - start :], v5)
    return packet, end


remaining_length = encode_varint
"""The variable-length encoding of a packet's remaining length (2.2.3): a Variable Byte Integer."""


def encode_publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False) -> bytes:
    """A PUBLISH packet (DUP=0); a QoS 0 one is encoded once and written to every QoS 0 subscriber."""
    topic_bytes = topic.encode("utf-8")
    variable = struct.pack("!H", len(topic_bytes)) + topic_bytes + (struct.pack("!H", packet_id) if qos else b"")
    length = remaining_length(len(variable) + len(payload))
    return b"".join((bytes([0x30 | qos << 1 | int(retain)]), length, variable, payload))


def is_publish(packet: bytes) -> bool:
    """Whether a packet from ``split_packet`` is a PUBLISH."""
    return packet[0] >> 4 == PUBLISH


def pubrel_id(packet: bytes) -> int | None:
    """The packet id of a PUBREL from ``split_packet``, None for any other packet."""
    return int.from_bytes(packet[2:4], "big") if packet[0] == PUBREL << 4 | 0x02 and len(packet) == 4 else None


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


def _body_start(packet: bytes) -> int:
    """Where a packet's variable header starts (after the remaining length's bytes)."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    return index + 1


def _filters(packet: bytes, *, with_qos: bool) -> tuple[int, list[tuple[str, int]]]:
    start = _body_start(packet)
    (packet_id,) = struct.unpack_from("!H", packet, start)
    offset, end = start + 2, len(packet)
    found: list[tuple[str, int]] = []
    while offset < end:
        (length,) = struct.unpack_from("!H", packet, offset)
        offset += 2
        try:
            topic_filter = packet[offset : offset + length].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("topic filter is not UTF-8 (1.5.3)") from None
        offset += length
        qos = packet[offset] if with_qos else 0
        offset += with_qos
        found.append((topic_filter, qos))
    return packet_id, found


def parse_subscribe(packet: bytes) -> tuple[int, list[tuple[str, int]]]:
    """(packet id, [(filter, requested QoS)]) of a SUBSCRIBE checked by ``split_packet``;
    ProtocolViolation for a filter that is not UTF-8."""
    return _filters(packet, with_qos=True)


def parse_unsubscribe(packet: bytes) -> tuple[int, list[str]]:
    """(packet id, [filter]) of an UNSUBSCRIBE checked by ``split_packet``; ProtocolViolation
    for a filter that is not UTF-8."""
    packet_id, found = _filters(packet, with_qos=False)
    return packet_id, [topic_filter for topic_filter, _ in found]


def encode_suback(packet_id: int, return_codes: list[int]) -> bytes:
    """A SUBACK: one return code per filter, in SUBSCRIBE order (3.9)."""
    return b"\x90" + remaining_length(2 + len(return_codes)) + struct.pack("!H", packet_id) + bytes(return_codes)


def encode_unsuback(packet_id: int) -> bytes:
    """An UNSUBACK (3.11)."""
    return b"\xb0\x02" + struct.pack("!H", packet_id)


class Connect(NamedTuple):
    """The fields of a CONNECT packet (3.1); only ``protocol_name`` and ``level`` when the level is
    neither MQTT 3.1.1's (4) nor MQTT 3.1's (3): the rest of such a packet is not read, it is
    refused with CONNACK 1."""

    protocol_name: str
    level: int
    clean_session: bool = True
    keep_alive: int = 0
    client_id: str = ""
    will_topic: str | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False
    username: str | None = None
    password: str | None = None
    properties: Properties | None = None
    """MQTT 5: the CONNECT's properties (None before MQTT 5)."""
    will_properties: Properties | None = None
    """MQTT 5: the will's properties (None without a will or before MQTT 5)."""


class _Fields:
    """Reads the fields of one packet's body in order; ProtocolViolation if one is cut short."""

    __slots__ = ("_data", "_offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self._data, self._offset = data, offset

    def _take(self, size: int, what: str) -> bytes:
        end = self._offset + size
        if end > len(self._data):
            raise ProtocolViolation(f"CONNECT cut short in its {what}")
        chunk, self._offset = self._data[self._offset : end], end
        return chunk

    def skip(self, size: int) -> None:
        self._offset += size

    def byte(self, what: str) -> int:
        return self._take(1, what)[0]

    def uint16(self, what: str) -> int:
        return int.from_bytes(self._take(2, what), "big")

    def binary(self, what: str) -> bytes:
        return self._take(self.uint16(what), what)

    def string(self, what: str) -> str:
        try:
            text = self.binary(what).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(f"CONNECT {what} is not UTF-8 (1.5.3)") from None
        if "\x00" in text:
            raise ProtocolViolation(f"CONNECT {what} holds U+0000 (MQTT-1.5.4-2)")
        return text

    def properties(self, what: str) -> Properties:
        try:
            found, self._offset = decode_properties(self._data, self._offset, "WILL" if what == "will" else "CONNECT")
        except PropertyError as exc:
            raise ProtocolViolation(f"CONNECT {what} properties: {exc}", exc.code) from None
        return found

    def left(self) -> int:
        return len(self._data) - self._offset


_MQTT_311 = b"\x00\x04MQTT\x04"  # protocol name and level of MQTT 3.1.1
_LEVELS = (3, 4, 5)  # MQTT 3.1 ("MQIsdp", same CONNECT layout), 3.1.1 and 5.0 (with properties)
_PLAIN = struct.Struct("!7sBHH")  # that, flags, keep alive, client id length
_RESERVED, _CLEAN, _WILL, _WILL_RETAIN, _PASSWORD, _USERNAME = 0x01, 0x02, 0x04, 0x20, 0x40, 0x80


def parse_connect(packet: bytes) -> Connect:
    """The fields of a CONNECT from ``split_packet``; ProtocolViolation if it is malformed (the
    connection is closed without CONNACK: 3.1.2-1, 3.1.2-3, 3.1.2-11 to 3.1.2-15, 3.1.3)."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    start = index + 1
    if packet.startswith(_MQTT_311, start) and len(packet) >= start + _PLAIN.size:
        # the usual CONNECT: MQTT 3.1.1 with a client id and nothing else, read at once
        _, flags, keep_alive, id_length = _PLAIN.unpack_from(packet, start)
        if flags & ~_CLEAN == 0 and start + _PLAIN.size + id_length == len(packet):
            try:
                return Connect("MQTT", 4, bool(flags), keep_alive, packet[start + _PLAIN.size :].decode("utf-8"))
            except UnicodeDecodeError:
                pass  # the field-by-field reading below says what is wrong
    return _parse_connect_fields(packet, start)


def _parse_connect_fields(packet: bytes, start: int) -> Connect:
    fields = _Fields(packet, start)
    if packet.startswith(_MQTT_311, start):  # the usual name and level, without decoding them
        fields.skip(len(_MQTT_311))
        name, level = "MQTT", 4
    else:
        name, level = fields.string("protocol name"), fields.byte("protocol level")
        if name != "MQTT" and not (name == "MQIsdp" and level == 3):
            raise ProtocolViolation(f"CONNECT with protocol name {name!r} (3.1.2-1)")
        if level not in _LEVELS:
            return Connect(name, level)
    flags, keep_alive = fields.byte("flags"), fields.uint16("keep alive")
    properties = fields.properties("connect") if level == 5 else None
    values = properties.values if properties is not None else {}
    if "authentication_data" in values and "authentication_method" not in values:
        raise ProtocolViolation("CONNECT with Authentication Data but no method (3.1.2.11.10)", 0x82)
    if flags & _RESERVED:
        raise ProtocolViolation("CONNECT with the reserved flag set (3.1.2-3)")
    will_qos = (flags >> 3) & 0x03
    if not flags & _WILL and (will_qos or flags & _WILL_RETAIN):
        raise ProtocolViolation("CONNECT with a will QoS or retain but no will (3.1.2-13, 3.1.2-15)")
    if will_qos == 3:
        raise ProtocolViolation("CONNECT with will QoS 3 (3.1.2-14)")
    client_id = fields.string("client identifier")
    will_properties = fields.properties("will") if level == 5 and flags & _WILL else None
    will_topic, will_message = (
        (fields.string("will topic"), fields.binary("will message")) if flags & _WILL else (None, None)
    )
    username = fields.string("user name") if flags & _USERNAME else None
    password = fields.binary("password").decode("utf-8", "replace") if flags & _PASSWORD else None
    if fields.left():
        raise ProtocolViolation("CONNECT with bytes after its payload (3.1.3)")
    return Connect(
        name, level, bool(flags & _CLEAN), keep_alive, client_id,
        will_topic, will_message, will_qos, bool(flags & _WILL_RETAIN), username, password,
        properties, will_properties,
    )  # fmt: skip
