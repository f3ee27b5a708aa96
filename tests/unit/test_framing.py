"""Splitting a byte stream into checked MQTT packets and reading CONNECTs (broker/mqtt/framing.py)."""

from __future__ import annotations

import pytest

from broker.mqtt.encoding import encode_subscribe, encode_unsubscribe
from broker.mqtt.framing import (
    Connect,
    ProtocolViolation,
    encode_publish,
    encode_suback,
    encode_unsuback,
    parse_connect,
    parse_subscribe,
    parse_unsubscribe,
    remaining_length,
    split_packet,
)

PUBLISH = encode_publish("a/b", b"payload")
PINGREQ = b"\xc0\x00"


def test_packets_are_split_across_chunk_boundaries() -> None:
    """A packet cut at any byte is only returned once it is whole, and the offset moves past it."""
    stream = PUBLISH + PINGREQ
    for cut in range(len(PUBLISH)):
        assert split_packet(stream[:cut], 0, 1000, first_packet=False) is None
    assert split_packet(stream, 0, 1000, first_packet=False) == (PUBLISH, len(PUBLISH))
    assert split_packet(stream, len(PUBLISH), 1000, first_packet=False) == (PINGREQ, len(stream))


def test_oversized_packet_is_refused_from_its_header() -> None:
    """max_packet_size is enforced before the body arrives."""
    header_only = b"\x30\xff\xff\x03"  # PUBLISH announcing 65 535 bytes
    with pytest.raises(ProtocolViolation, match="max_packet_size"):
        split_packet(header_only, 0, 1024, first_packet=False)


def test_remaining_length_of_five_bytes_is_refused() -> None:
    """2.2.3: the remaining length has at most four bytes."""
    with pytest.raises(ProtocolViolation, match="longer than 4 bytes"):
        split_packet(b"\x30\xff\xff\xff\xff\x01", 0, 1 << 30, first_packet=False)
    with pytest.raises(ProtocolViolation, match="longer than 4 bytes"):  # without waiting for a sixth byte
        split_packet(b"\x30\xff\xff\xff\xff", 0, 1 << 30, first_packet=False)


def test_first_packet_must_be_connect() -> None:
    """3.1.0-1: anything but CONNECT first is refused."""
    with pytest.raises(ProtocolViolation, match="CONNECT"):
        split_packet(PINGREQ, 0, 1000, first_packet=True)


def _connect_body(name: bytes, level: int, flags: int, payload: bytes) -> bytes:
    body = len(name).to_bytes(2, "big") + name + bytes([level, flags]) + (30).to_bytes(2, "big") + payload
    return b"\x10" + remaining_length(len(body)) + body


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def test_connect_fields_are_parsed() -> None:
    """Client id, will, user name and password come out of a whole CONNECT."""
    payload = _string(b"id") + _string(b"w/t") + _string(b"bye") + _string(b"alice") + _string(b"secret")
    connect = parse_connect(_connect_body(b"MQTT", 4, 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80, payload))
    assert connect == Connect("MQTT", 4, True, 30, "id", "w/t", b"bye", 1, True, "alice", "secret")


@pytest.mark.parametrize("flags", [0x00, 0x02])
def test_connect_with_only_a_client_id_is_parsed(flags: int) -> None:
    """The usual CONNECT (client id only, read at once) gives the same fields as any other."""
    connect = parse_connect(_connect_body(b"MQTT", 4, flags, _string("клиент-1".encode())))
    assert connect == Connect("MQTT", 4, bool(flags), 30, "клиент-1")


def test_connect_with_a_client_id_that_is_not_utf8_is_refused() -> None:
    """1.5.3: a client identifier that is not UTF-8 is a protocol violation."""
    with pytest.raises(ProtocolViolation, match="not UTF-8"):
        parse_connect(_connect_body(b"MQTT", 4, 0x02, _string(b"\xff\xfe")))


def test_connect_of_another_protocol_level_is_not_read_further() -> None:
    """A CONNECT of an unknown level (6) yields its level only, for CONNACK 1 (3.1.2-2)."""
    assert parse_connect(_connect_body(b"MQTT", 6, 0x02, b"\x00")) == Connect("MQTT", 6)


def test_mqtt31_connect_is_read_whole() -> None:
    """An MQTT 3.1 CONNECT ("MQIsdp", level 3) has 3.1.1's layout and is read whole."""
    connect = parse_connect(_connect_body(b"MQIsdp", 3, 0x02, _string(b"a-client-id-longer-than-23-bytes")))
    assert connect == Connect("MQIsdp", 3, True, 30, "a-client-id-longer-than-23-bytes")


@pytest.mark.parametrize(
    ("name", "flags", "payload", "reason"),
    [
        (b"MQTX", 0x02, _string(b"id"), "protocol name"),
        (b"MQTT", 0x03, _string(b"id"), "reserved flag"),
        (b"MQTT", 0x0A, _string(b"id"), "no will"),  # will QoS 1 without the will flag
        (b"MQTT", 0x1E, _string(b"id") + _string(b"t") + _string(b"m"), "will QoS 3"),
        (b"MQTT", 0x82, _string(b"id"), "cut short"),  # user name flag without a user name
        (b"MQTT", 0x02, _string(b"id") + b"extra", "after its payload"),
    ],
)
def test_malformed_connect_is_refused(name: bytes, flags: int, payload: bytes, reason: str) -> None:
    """3.1.2-1, 3.1.2-3, 3.1.2-13 to 15, 3.1.3: a malformed CONNECT is a protocol violation."""
    with pytest.raises(ProtocolViolation, match=reason):
        parse_connect(_connect_body(name, 4, flags, payload))


def test_subscribe_and_unsubscribe_read_back_what_the_encoder_wrote() -> None:
    """parse_subscribe and parse_unsubscribe return the packet id and every filter, in order."""
    subscribe = encode_subscribe(7, ("a/+", 0), ("b/#", 2), ("température", 1))
    unsubscribe = encode_unsubscribe(9, "a/+", "température")
    assert split_packet(subscribe, 0, 1024, first_packet=False) == (subscribe, len(subscribe))
    assert parse_subscribe(subscribe) == (7, [("a/+", 0), ("b/#", 2), ("température", 1)])
    assert parse_unsubscribe(unsubscribe) == (9, ["a/+", "température"])


def test_filter_that_is_not_utf8_is_a_protocol_violation() -> None:
    """1.5.3: a SUBSCRIBE filter that is not UTF-8 is refused, not decoded into something else."""
    body = b"\x00\x01" + b"\x00\x02\xff\xfe" + b"\x00"
    with pytest.raises(ProtocolViolation, match="UTF-8"):
        parse_subscribe(b"\x82" + remaining_length(len(body)) + body)


def test_suback_and_unsuback_bytes() -> None:
    """3.9 and 3.11: SUBACK carries one return code per filter, UNSUBACK only the packet id."""
    assert encode_suback(0x0102, [0, 2, 0x80]) == b"\x90\x05\x01\x02\x00\x02\x80"
    assert encode_unsuback(0x0304) == b"\xb0\x02\x03\x04"
