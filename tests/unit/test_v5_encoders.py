"""What the broker encodes for MQTT 5.0 clients (broker/mqtt/v5_packets.py) reads back the same:
through edgemq's own parsers where it has one for that packet (PUBLISH, the acknowledgements,
DISCONNECT), through paho-mqtt's property decoder for CONNACK, byte by byte for SUBACK and UNSUBACK.
Ids and sections: OASIS MQTT Version 5.0.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from broker.mqtt.framing import split_packet
from broker.mqtt.properties import Properties, encode_properties
from broker.mqtt.v5_packets import (
    NO_PROPERTIES,
    encode_ack5,
    encode_connack5,
    encode_disconnect5,
    encode_publish5,
    encode_suback5,
    encode_unsuback5,
    parse_ack5,
    parse_disconnect5,
    parse_publish5,
)
from tests.mqtt5_packets import PUBACK, PUBCOMP, PUBREC, PUBREL


def framed(data: bytes) -> bytes:
    """``data`` as the broker's reader hands it on: one whole packet, its fixed header checked."""
    found = split_packet(data, 0, 1 << 20, first_packet=False, v5=True)
    assert found is not None, "not a whole packet"
    assert found[1] == len(data), "more than one packet"
    return found[0]


TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12)
TOPICS = TEXT.filter(lambda topic: bool(topic) and "+" not in topic and "#" not in topic)


@settings(max_examples=150, deadline=None)
@given(
    TOPICS, st.binary(max_size=64), st.integers(0, 2), st.integers(1, 0xFFFF), st.booleans(),
    st.dictionaries(st.sampled_from(["content_type", "response_topic"]), TEXT),
    st.lists(st.tuples(TEXT, TEXT), max_size=3),
)  # fmt: skip
def test_encoded_publish_reads_back_the_same(
    topic: str, payload: bytes, qos: int, packet_id: int, retain: bool,
    values: dict[str, str], users: list[tuple[str, str]],
) -> None:  # fmt: skip
    """3.3: encode_publish5 then parse_publish5 gives the topic, payload, QoS, packet id, retain and properties back."""
    properties = Properties(dict(values), users)
    data = encode_publish5(topic, payload, qos, packet_id, retain, encode_properties(properties))
    read = parse_publish5(framed(data))
    assert read == (topic, payload, qos, retain, packet_id if qos else 0, properties)


def test_encoded_publish_sets_dup_at_qos_1_and_2_only() -> None:
    """MQTT-3.3.1-2: DUP is set on a resent QoS 1/2 PUBLISH and never on a QoS 0 one."""
    assert encode_publish5("t", b"", 1, 5, False, NO_PROPERTIES, dup=True)[0] == 0x3A
    assert encode_publish5("t", b"", 0, 0, False, NO_PROPERTIES, dup=True)[0] == 0x30


@pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
@pytest.mark.parametrize("reason", [0x00, 0x10, 0x80, 0x92])
def test_encoded_acks_read_back_the_same(kind: int, reason: int) -> None:
    """3.4 to 3.7: encode_ack5 then parse_ack5 gives the packet id and reason code back (PUBREL flags 0010)."""
    assert parse_ack5(framed(encode_ack5(kind, 0xBEEF, reason))) == (0xBEEF, reason)


@pytest.mark.parametrize("reason", [0x00, 0x04, 0x8B, 0x8E, 0x93])
def test_encoded_disconnect_reads_back_the_same(reason: int) -> None:
    """3.14: encode_disconnect5 then parse_disconnect5 gives the reason code back, no properties."""
    assert parse_disconnect5(framed(encode_disconnect5(reason))) == (reason, Properties())


def test_encoded_connack_is_read_by_paho() -> None:
    """3.2: encode_connack5 writes session present, the reason code and properties paho-mqtt reads back."""
    data = encode_connack5(True, 0, Properties({"maximum_packet_size": 4096, "assigned_client_identifier": "c-1"}))
    assert data[:4] == bytes((0x20, len(data) - 2, 1, 0))
    make: Any = PahoProperties
    read = make(PacketTypes.CONNACK)
    _, used = read.unpack(data[4:])
    assert used == len(data) - 4
    assert (read.MaximumPacketSize, read.AssignedClientIdentifier) == (4096, "c-1")


@pytest.mark.parametrize(("encode", "first"), [(encode_suback5, 0x90), (encode_unsuback5, 0xB0)])
def test_encoded_suback_and_unsuback_carry_one_reason_per_filter(encode: object, first: int) -> None:
    """3.9.3, 3.11.3: the packet id, an empty property block, then one reason code per filter in order."""
    data = encode(77, [0x00, 0x02, 0x87, 0x11])  # type: ignore[operator]
    assert data == bytes((first, 7)) + b"\x00\x4d" + b"\x00" + b"\x00\x02\x87\x11"
