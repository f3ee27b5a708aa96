"""Encoding the MQTT 3.1.1 packets a client sends (pure, no amqtt).

One encoder for the broker, the tests' raw clients and the benchmark's load generator:
CONNECT, PUBLISH (``encode_publish`` from broker/mqtt/framing.py, which the broker writes),
SUBSCRIBE, UNSUBSCRIBE, the acknowledgements of QoS 1 and 2 flows, PINGREQ and DISCONNECT.
The encoders do not check their arguments: a caller that wants a malformed packet builds it by hand.
"""

from __future__ import annotations

import struct

from broker.mqtt.framing import encode_publish, remaining_length

__all__ = [
    "DISCONNECT",
    "PINGREQ",
    "encode_connect",
    "encode_puback",
    "encode_pubcomp",
    "encode_publish",
    "encode_pubrec",
    "encode_pubrel",
    "encode_subscribe",
    "encode_unsubscribe",
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
) -> bytes:
    """A CONNECT packet (3.1); ``will`` is (topic, message, qos, retain). MQTT 3.1 is
    ``protocol_name="MQIsdp", level=3``."""
    flags = _CLEAN if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= _WILL | qos << 3 | (_WILL_RETAIN if retain else 0)
        payload += _string(topic) + _string(message)
    if username is not None:
        flags |= _USERNAME
        payload += _string(username)
    if password is not None:
        flags |= _PASSWORD
        payload += _string(password)
    variable = _string(protocol_name) + bytes([level, flags]) + struct.pack("!H", keep_alive)
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
