"""Encoding client packets (broker/mqtt/encoding.py): byte-exact against the MQTT 3.1.1 examples
and read back by the broker's own parser (broker/mqtt/framing.py)."""

from __future__ import annotations

import pytest

from broker.mqtt.encoding import (
    DISCONNECT,
    PINGREQ,
    encode_connect,
    encode_puback,
    encode_pubcomp,
    encode_publish,
    encode_pubrec,
    encode_pubrel,
    encode_subscribe,
    encode_unsubscribe,
)
from broker.mqtt.framing import Connect, parse_connect, parse_publish, pubrel_id, remaining_length, split_packet


def _split(packet: bytes, *, first_packet: bool = False) -> bytes:
    """The packet as split_packet reads it: whole, checked, nothing left over."""
    split = split_packet(packet, 0, 1 << 20, first_packet=first_packet)
    assert split == (packet, len(packet))
    return split[0]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_spec_table(value: int, encoded: bytes) -> None:
    """2.2.3, table 2.4: the boundaries of one to four remaining length bytes."""
    assert remaining_length(value) == encoded


def test_connect_variable_header_matches_the_spec_example() -> None:
    """3.1.2.11 (non-normative example): user name, password, will QoS 1, will, clean session, keep alive 10."""
    packet = encode_connect("", keep_alive=10, will=("w", b"m", 1, False), username="u", password=b"p")
    variable_header = b"\x00\x04MQTT\x04\xce\x00\x0a"
    payload = b"\x00\x00" + b"\x00\x01w" + b"\x00\x01m" + b"\x00\x01u" + b"\x00\x01p"
    assert packet == b"\x10" + bytes([len(variable_header + payload)]) + variable_header + payload


def test_minimal_connect_is_byte_exact() -> None:
    """A clean session CONNECT with only a client id: flags 0x02, the client id last (3.1.3)."""
    assert encode_connect("id", keep_alive=60) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id"


def test_connect_round_trips_through_the_parser() -> None:
    """Every field of an encoded CONNECT comes back out of split_packet and parse_connect."""
    packet = encode_connect(
        "клиент", clean_session=False, keep_alive=300, will=("wills/x", b"\x00gone", 2, True),
        username="alice", password="secret",
    )  # fmt: skip
    assert parse_connect(_split(packet, first_packet=True)) == Connect(
        "MQTT", 4, False, 300, "клиент", "wills/x", b"\x00gone", 2, True, "alice", "secret"
    )


def test_mqtt31_connect_round_trips_through_the_parser() -> None:
    """An MQTT 3.1 CONNECT ("MQIsdp", level 3) keeps its protocol name and level."""
    packet = encode_connect("old", protocol_name="MQIsdp", level=3)
    assert parse_connect(_split(packet, first_packet=True)) == Connect("MQIsdp", 3, True, 60, "old")


def test_publish_variable_header_matches_the_spec_example() -> None:
    """3.3.2.3 (non-normative example): topic "a/b" and packet identifier 10 in a QoS 1 PUBLISH."""
    assert encode_publish("a/b", b"", qos=1, packet_id=10) == b"\x32\x07\x00\x03a/b\x00\x0a"


@pytest.mark.parametrize(("qos", "packet_id", "retain"), [(0, 0, False), (1, 7, True), (2, 65_535, False)])
def test_publish_round_trips_through_the_parser(qos: int, packet_id: int, retain: bool) -> None:
    """Topic, payload, QoS, retain and packet id come back out of split_packet and parse_publish."""
    payload = bytes(range(256)) * 2  # a two-byte remaining length
    packet = encode_publish("a/b/ü", payload, qos=qos, packet_id=packet_id, retain=retain)
    assert parse_publish(_split(packet)) == ("a/b/ü", payload, qos, retain, packet_id)


def test_subscribe_matches_the_spec_example() -> None:
    """3.8.3.1 (non-normative example): packet identifier 10, "a/b" at QoS 1 and "c/d" at QoS 2, flags 0b0010."""
    packet = encode_subscribe(10, ("a/b", 1), ("c/d", 2))
    assert packet == b"\x82\x0e\x00\x0a" + b"\x00\x03a/b\x01" + b"\x00\x03c/d\x02"
    assert _split(packet) == packet


def test_unsubscribe_matches_the_spec_example() -> None:
    """3.10.3.1 (non-normative example): packet identifier 10, filters "a/b" and "c/d", flags 0b0010."""
    packet = encode_unsubscribe(10, "a/b", "c/d")
    assert packet == b"\xa2\x0c\x00\x0a" + b"\x00\x03a/b" + b"\x00\x03c/d"
    assert _split(packet) == packet


def test_acknowledgements_are_byte_exact() -> None:
    """3.4 to 3.7: PUBACK, PUBREC, PUBREL (flags 0b0010) and PUBCOMP carry the packet identifier."""
    assert encode_puback(0x0102) == b"\x40\x02\x01\x02"
    assert encode_pubrec(0x0102) == b"\x50\x02\x01\x02"
    assert encode_pubrel(0x0102) == b"\x62\x02\x01\x02"
    assert encode_pubcomp(0x0102) == b"\x70\x02\x01\x02"


def test_acknowledgements_round_trip_through_the_parser() -> None:
    """split_packet accepts every acknowledgement and pubrel_id reads the PUBREL's packet id."""
    for packet in (encode_puback(9), encode_pubrec(9), encode_pubcomp(9)):
        assert pubrel_id(_split(packet)) is None
    assert pubrel_id(_split(encode_pubrel(65_535))) == 65_535


def test_pingreq_and_disconnect_are_byte_exact() -> None:
    """3.12 and 3.14: two bytes each, no remaining length."""
    assert (_split(PINGREQ), _split(DISCONNECT)) == (b"\xc0\x00", b"\xe0\x00")
