"""MQTT 5.0 properties (OASIS MQTT 5.0 section 2.2.2): decoding with every check the standard
asks for, and encoding (pure, no I/O).

The broker speaks MQTT 3.1.1 to clients today; this codec is the first piece of the MQTT 5 protocol
level (issue 16), checked on its own (tests/unit/test_properties.py, with hypothesis).

A property block is a Variable Byte Integer length, then (identifier, value) pairs. Decoding
refuses, as ``PropertyError`` carrying the reason code the broker would send:
- an identifier unknown or not allowed in that packet, a value cut short or longer than the block,
  a string that is not well-formed UTF-8: Malformed Packet (0x81, section 2.2.2.2, 1.5.4);
- a property given twice that may appear once, or a value out of its range (a Receive Maximum,
  Maximum Packet Size, Topic Alias or Subscription Identifier of 0, a byte flag other than 0 or
  1): Protocol Error (0x82, 3.1.2.11 and following).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal, get_args

__all__ = [
    "MALFORMED",
    "PROTOCOL_ERROR",
    "PacketKind",
    "Properties",
    "PropertyError",
    "decode_properties",
    "decode_varint",
    "encode_properties",
    "encode_varint",
]

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
MAX_VARINT = 268_435_455

PacketKind = Literal[
    "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK",
    "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH", "WILL",
]  # fmt: skip


class PropertyError(ValueError):
    """A property block the standard refuses; ``code`` is the reason code for the refusal."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Kind(IntEnum):
    """How a property's value is written."""

    BYTE = 1
    TWO = 2
    FOUR = 4
    VARINT = 5
    STRING = 6
    BINARY = 7
    PAIR = 8


_ACKS = ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP")


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    kind: Kind
    packets: tuple[str, ...]


SPECS: dict[int, _Spec] = {
    0x01: _Spec("payload_format_indicator", Kind.BYTE, ("PUBLISH", "WILL")),
    0x02: _Spec("message_expiry_interval", Kind.FOUR, ("PUBLISH", "WILL")),
    0x03: _Spec("content_type", Kind.STRING, ("PUBLISH", "WILL")),
    0x08: _Spec("response_topic", Kind.STRING, ("PUBLISH", "WILL")),
    0x09: _Spec("correlation_data", Kind.BINARY, ("PUBLISH", "WILL")),
    0x0B: _Spec("subscription_identifier", Kind.VARINT, ("PUBLISH", "SUBSCRIBE")),
    0x11: _Spec("session_expiry_interval", Kind.FOUR, ("CONNECT", "CONNACK", "DISCONNECT")),
    0x12: _Spec("assigned_client_identifier", Kind.STRING, ("CONNACK",)),
    0x13: _Spec("server_keep_alive", Kind.TWO, ("CONNACK",)),
    0x15: _Spec("authentication_method", Kind.STRING, ("CONNECT", "CONNACK", "AUTH")),
    0x16: _Spec("authentication_data", Kind.BINARY, ("CONNECT", "CONNACK", "AUTH")),
    0x17: _Spec("request_problem_information", Kind.BYTE, ("CONNECT",)),
    0x18: _Spec("will_delay_interval", Kind.FOUR, ("WILL",)),
    0x19: _Spec("request_response_information", Kind.BYTE, ("CONNECT",)),
    0x1A: _Spec("response_information", Kind.STRING, ("CONNACK",)),
    0x1C: _Spec("server_reference", Kind.STRING, ("CONNACK", "DISCONNECT")),
    0x1F: _Spec("reason_string", Kind.STRING, ("CONNACK", *_ACKS, "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH")),
    0x21: _Spec("receive_maximum", Kind.TWO, ("CONNECT", "CONNACK")),
    0x22: _Spec("topic_alias_maximum", Kind.TWO, ("CONNECT", "CONNACK")),
    0x23: _Spec("topic_alias", Kind.TWO, ("PUBLISH",)),
    0x24: _Spec("maximum_qos", Kind.BYTE, ("CONNACK",)),
    0x25: _Spec("retain_available", Kind.BYTE, ("CONNACK",)),
    0x26: _Spec("user_property", Kind.PAIR, get_args(PacketKind)),
    0x27: _Spec("maximum_packet_size", Kind.FOUR, ("CONNECT", "CONNACK")),
    0x28: _Spec("wildcard_subscription_available", Kind.BYTE, ("CONNACK",)),
    0x29: _Spec("subscription_identifier_available", Kind.BYTE, ("CONNACK",)),
    0x2A: _Spec("shared_subscription_available", Kind.BYTE, ("CONNACK",)),
}
_BY_NAME = {spec.name: (identifier, spec) for identifier, spec in SPECS.items()}
_FLAGS = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})  # 0 or 1 (Maximum QoS: also 0 or 1)
_NOT_ZERO = frozenset({0x0B, 0x21, 0x23, 0x27})
_REPEATABLE = frozenset({0x26, 0x0B})  # 0x0B repeats only in a PUBLISH to a client (3.3.2.3.8)


@dataclass(slots=True)
class Properties:
    """The properties of one packet: single ones by name, user properties in order, and the
    subscription identifiers of a PUBLISH (it may carry several)."""

    values: dict[str, int | str | bytes] = field(default_factory=dict)
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    subscription_identifiers: list[int] = field(default_factory=list)

    def get(self, name: str) -> int | str | bytes | None:
        """The value of a single property, None when absent."""
        return self.values.get(name)

    def __bool__(self) -> bool:
        return bool(self.values or self.user_properties or self.subscription_identifiers)


def encode_varint(value: int) -> bytes:
    """A Variable Byte Integer (1.5.5): 7 bits a byte, least significant first."""
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"{value} does not fit a Variable Byte Integer")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes, offset: int, end: int | None = None) -> tuple[int, int]:
    """(value, offset after it), read before ``end`` (default: the end of ``data``);
    PropertyError 0x81 if cut short or longer than four bytes."""
    limit = len(data) if end is None else end
    value = 0
    for index in range(4):
        if offset + index >= limit:
            raise PropertyError(MALFORMED, "Variable Byte Integer cut short")
        byte = data[offset + index]
        value += (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise PropertyError(MALFORMED, "Variable Byte Integer longer than four bytes")


def _take(data: bytes, offset: int, size: int, end: int, what: str) -> bytes:
    if offset + size > end:
        raise PropertyError(MALFORMED, f"{what} runs past the property block")
    return data[offset : offset + size]


def _string(data: bytes, offset: int, end: int, what: str) -> tuple[str, int]:
    (length,) = struct.unpack("!H", _take(data, offset, 2, end, what))
    raw = _take(data, offset + 2, length, end, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PropertyError(MALFORMED, f"{what} is not well-formed UTF-8") from None
    if "\x00" in text:  # MQTT-1.5.4-2
        raise PropertyError(MALFORMED, f"{what} holds U+0000")
    return text, offset + 2 + length


def _value(data: bytes, offset: int, end: int, spec: _Spec) -> tuple[int | str | bytes | tuple[str, str], int]:
    kind = spec.kind
    if kind in (Kind.BYTE, Kind.TWO, Kind.FOUR):
        raw = _take(data, offset, int(kind), end, spec.name)
        return int.from_bytes(raw, "big"), offset + int(kind)
    if kind is Kind.VARINT:
        return decode_varint(data, offset, end)
    if kind is Kind.STRING:
        return _string(data, offset, end, spec.name)
    if kind is Kind.BINARY:
        (length,) = struct.unpack("!H", _take(data, offset, 2, end, spec.name))
        return _take(data, offset + 2, length, end, spec.name), offset + 2 + length
    key, after = _string(data, offset, end, "user property name")
    value, after = _string(data, after, end, "user property value")
    return (key, value), after


def decode_properties(data: bytes, offset: int, packet: PacketKind) -> tuple[Properties, int]:
    """The property block of ``packet`` starting at ``offset``, and the offset after it."""
    length, start = decode_varint(data, offset)
    end = start + length
    if end > len(data):
        raise PropertyError(MALFORMED, "property length runs past the packet")
    properties = Properties()
    position = start
    while position < end:
        identifier, position = decode_varint(data, position, end)
        spec = SPECS.get(identifier)
        if spec is None or packet not in spec.packets:
            raise PropertyError(MALFORMED, f"property 0x{identifier:02X} is not allowed in {packet}")
        value, position = _value(data, position, end, spec)
        if identifier == 0x26:
            assert isinstance(value, tuple)
            properties.user_properties.append(value)
            continue
        assert not isinstance(value, tuple)
        _check_range(identifier, spec, value)
        if identifier == 0x0B:
            if properties.subscription_identifiers and packet != "PUBLISH":
                raise PropertyError(PROTOCOL_ERROR, f"{spec.name} given twice")
            assert isinstance(value, int)
            properties.subscription_identifiers.append(value)
            continue
        if spec.name in properties.values:
            raise PropertyError(PROTOCOL_ERROR, f"{spec.name} given twice")
        properties.values[spec.name] = value
    return properties, end


def _check_range(identifier: int, spec: _Spec, value: int | str | bytes) -> None:
    if identifier in _FLAGS and value not in (0, 1):
        raise PropertyError(PROTOCOL_ERROR, f"{spec.name} must be 0 or 1, not {value!r}")
    if identifier in _NOT_ZERO and value == 0:
        raise PropertyError(PROTOCOL_ERROR, f"{spec.name} must not be 0")


def encode_properties(properties: Properties) -> bytes:
    """The property block (length and pairs) for ``properties``; ValueError for an unknown name."""
    body = bytearray()
    for name, value in properties.values.items():
        if name not in _BY_NAME:
            raise ValueError(f"unknown property {name!r}")
        identifier, spec = _BY_NAME[name]
        body += encode_varint(identifier) + _encode_value(spec.kind, value)
    for identifier in properties.subscription_identifiers:
        body += encode_varint(0x0B) + encode_varint(identifier)
    for key, value in properties.user_properties:
        body += encode_varint(0x26) + _encode_string(key) + _encode_string(value)
    return encode_varint(len(body)) + bytes(body)


def _encode_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def _encode_value(kind: Kind, value: int | str | bytes) -> bytes:
    if kind in (Kind.BYTE, Kind.TWO, Kind.FOUR):
        assert isinstance(value, int)
        return value.to_bytes(int(kind), "big")
    if kind is Kind.VARINT:
        assert isinstance(value, int)
        return encode_varint(value)
    if kind is Kind.STRING:
        assert isinstance(value, str)
        return _encode_string(value)
    assert isinstance(value, bytes)
    return struct.pack("!H", len(value)) + value
