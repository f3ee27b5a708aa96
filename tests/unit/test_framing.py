"""Splitting a byte stream into checked MQTT packets (broker/mqtt_framing.py)."""

from __future__ import annotations

import pytest

from broker.mqtt_framing import ProtocolViolation, encode_publish, split_packet

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
