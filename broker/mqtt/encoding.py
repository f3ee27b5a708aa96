"""Encoding the MQTT 3.1.1 and MQTT 5 packets a client sends (pure, no amqtt).

One encoder for the broker, the tests' raw clients and the benchmark's load generator:
CONNECT, PUBLISH (``encode_publish`` from broker/mqtt/framing.py, which the broker writes),
SUBSCRIBE, UNSUBSCRIBE, the acknowledgements of QoS 1 and 2 flows, PINGREQ and DISCONNECT; and
their MQTT 5 forms (``level=5`` or ``_v5``: a property block, subscription options, reason codes),
which the MQTT 5 bridge sends.
The encoders do not check their arguments: a caller that wants a malformed packet builds it by hand.
"""

from __future__ import annotations

import struct

from broker.mqtt.framing import encode_publish, remaining_length
from broker.mqtt.properties import Properties, encode_properties

__all__ = [
    "DISCONNECT",
    "PINGREQ",
    "encode_ack_v5",
    "encode_connect",
    "encode_disconnect_v5",
    "encode_puback",
    "encode_pubcomp",
    "encode_publish",
    "encode_publish_v5",
    "encode_pubrec",
    "encode_pubrel",
    "encode_subscribe",
    "encode_subscribe_v5",
    "encode_unsubscribe",
    "encode_unsubscribe_v5",
    "subscription_options",
]

DISCONNECT = b"\xe0\x00"
PINGREQ = b"\xc0\x00"

_CLEAN, _WILL, _WILL_RETAIN, _PASSWORD, _USERNAME = 0x02, 0x04, 0x20, 0x40, 0x80


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + remaining_length(len(body)) + body


def _string(value: str | bytes) -> bytes:
    """A UTF-8 string or binary data with its two-byte length (1.5.3, 3.1.3.4)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def encode_connect(
    client_id: str,
    *,
    clean_session: bool = True,
    keep_alive: int = 60,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: str | bytes | None = None,
    protocol_name: str = "MQTT",
    level: int = 4,
    properties: Properties | None = None,
) -> bytes:
    """A CONNECT packet (3.1); ``will`` is (topic, message, qos, retain). MQTT 3.1 is
    ``protocol_name="MQIsdp", level=3``; MQTT 5 is ``level=5`` with ``properties`` (3.1.2.11;
    the will, if any, without properties) and ``clean_session`` is then Clean Start."""
    v5 = level == 5
    flags = _CLEAN if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= _WILL | qos << 3 | (_WILL_RETAIN if retain else 0)
        payload += (b"\x00" if v5 else b"") + _string(topic) + _string(message)
    if username is not None:
        flags |= _USERNAME
        payload += _string(username)
    if password is not None:
        flags |= _PASSWORD
        payload += _string(password)
    variable = _string(protocol_name) + bytes([level, flags]) + struct.pack("!H", keep_alive)
    if v5:
        variable += encode_properties(properties or Properties())
    return _packet(0x10, variable + payload)


def encode_subscribe(packet_id: int, *filters: tuple[str, int]) -> bytes:
    """A SUBSCRIBE packet (3.8) with (topic filter, requested QoS) pairs."""
    body = struct.pack("!H", packet_id) + b"".join(_string(topic) + bytes([qos]) for topic, qos in filters)
    return _packet(0x82, body)


def encode_unsubscribe(packet_id: int, *filters: str) -> bytes:
    """An UNSUBSCRIBE packet (3.10) with its topic filters."""
    return _packet(0xA2, struct.pack("!H", packet_id) + b"".join(_string(topic) for topic in filters))


def encode_puback(packet_id: int) -> bytes:
    """A PUBACK (3.4): the answer to a QoS 1 PUBLISH."""
    return struct.pack("!BBH", 0x40, 2, packet_id)


def encode_pubrec(packet_id: int) -> bytes:
    """A PUBREC (3.5): the first answer to a QoS 2 PUBLISH."""
    return struct.pack("!BBH", 0x50, 2, packet_id)


def encode_pubrel(packet_id: int) -> bytes:
    """A PUBREL (3.6): the answer to a PUBREC (fixed header flags 0b0010)."""
    return struct.pack("!BBH", 0x62, 2, packet_id)


def encode_pubcomp(packet_id: int) -> bytes:
    """A PUBCOMP (3.7): the answer to a PUBREL."""
    return struct.pack("!BBH", 0x70, 2, packet_id)


# -- MQTT 5 -----------------------------------------------------------------------------


def subscription_options(
    qos: int, *, no_local: bool = False, retain_as_published: bool = False, retain_handling: int = 0
) -> int:
    """The Subscription Options byte of an MQTT 5 SUBSCRIBE (3.8.3.1)."""
    return qos | no_local << 2 | retain_as_published << 3 | retain_handling << 4


def encode_subscribe_v5(packet_id: int, *filters: tuple[str, int], properties: Properties | None = None) -> bytes:
    """An MQTT 5 SUBSCRIBE (3.8) with (topic filter, ``subscription_options``) pairs."""
    body = struct.pack("!H", packet_id) + encode_properties(properties or Properties())
    body += b"".join(_string(topic) + bytes([options]) for topic, options in filters)
    return _packet(0x82, body)


def encode_unsubscribe_v5(packet_id: int, *filters: str) -> bytes:
    """An MQTT 5 UNSUBSCRIBE (3.10), without properties."""
    body = struct.pack("!H", packet_id) + b"\x00" + b"".join(_string(topic) for topic in filters)
    return _packet(0xA2, body)


def encode_publish_v5(
    topic: str, payload: bytes, property_block: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    """An MQTT 5 PUBLISH (3.3, DUP=0); ``property_block`` is the encoded block, length first
    (``MessageProperties.block``, or ``b"\\x00"`` for none)."""
    topic_bytes = topic.encode("utf-8")
    variable = struct.pack("!H", len(topic_bytes)) + topic_bytes + (struct.pack("!H", packet_id) if qos else b"")
    return _packet(0x30 | qos << 1 | int(retain), variable + property_block + payload)


def encode_ack_v5(kind: int, packet_id: int, reason: int = 0) -> bytes:
    """An MQTT 5 PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7) with ``reason`` (3.4.2.1): the
    short form (no reason code, no properties) for Success."""
    first = kind << 4 | (0x02 if kind == 6 else 0)
    if not reason:
        return struct.pack("!BBH", first, 2, packet_id)
    return struct.pack("!BBHB", first, 3, packet_id, reason)


def encode_disconnect_v5(reason: int = 0) -> bytes:
    """An MQTT 5 DISCONNECT (3.14) with ``reason`` (0: normal disconnection, the will is not sent)."""
    return bytes((0xE0, 1, reason)) if reason else DISCONNECT
