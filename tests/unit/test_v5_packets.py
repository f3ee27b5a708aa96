"""MQTT 5.0 packets after the CONNECT (broker/mqtt/v5_packets.py): what each parser reads from a
well-formed packet and which reason code each refusal carries (0x81 malformed, 0x82 protocol
error); test_v5_encoders.py reads back what the broker encodes.

Packets come through ``split_packet(v5=True)`` as the broker reads them; well-formed property
blocks and subscription options are packed with paho-mqtt's MQTT 5 encoders, so the parsers are
checked against an encoder that is not edgemq's own. Ids and sections: OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker.mqtt.framing import ProtocolViolation, split_packet
from broker.mqtt.properties import MALFORMED, PROTOCOL_ERROR, Properties
from broker.mqtt.v5_packets import (
    NO_PROPERTIES,
    Subscription5,
    parse_ack5,
    parse_disconnect5,
    parse_publish5,
    parse_subscribe5,
    parse_unsubscribe5,
)
from tests.mqtt5_packets import PUBACK, PUBCOMP, PUBREC, PUBREL, ack, disconnect, props, publish, subscribe, unsubscribe
from tests.mqtt_packets import packet

MAX = 1 << 20
PACKET_TOO_LARGE = 0x95


def framed(data: bytes) -> bytes:
    """``data`` as the broker's reader hands it on: one whole packet, its fixed header checked."""
    found = split_packet(data, 0, MAX, first_packet=False, v5=True)
    assert found is not None, "not a whole packet"
    assert found[1] == len(data), "more than one packet"
    return found[0]


def paho_properties(kind: int) -> Any:
    """paho-mqtt's (untyped) property set for a packet type."""
    make: Any = PahoProperties
    return make(kind)


def paho_block(kind: int, **values: object) -> bytes:
    """A property block packed by paho-mqtt (names as paho spells them: ContentType=...)."""
    properties = paho_properties(kind)
    for name, value in values.items():
        setattr(properties, name, value)
    return bytes(properties.pack())


def string(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


def refusal(parse: object, data: bytes) -> int:
    """The reason code of the ProtocolViolation that reading ``data`` raises (framing or parser)."""
    with pytest.raises(ProtocolViolation) as refused:
        parse(framed(data))  # type: ignore[operator]
    return refused.value.code


# -- PUBLISH (3.3) ----------------------------------------------------------------------------


def test_publish_qos0_reads_topic_payload_and_flags() -> None:
    """3.3.1, 3.3.2: a QoS 0 PUBLISH has no packet identifier; its payload is what follows the properties."""
    read = parse_publish5(framed(publish("a/b", b"\x00payload", retain=True)))
    assert (read.topic, read.payload, read.qos, read.retain, read.packet_id) == ("a/b", b"\x00payload", 0, True, 0)
    assert not read.properties


def test_publish_qos2_reads_packet_id_and_paho_packed_properties() -> None:
    """3.3.2.3: every PUBLISH property a client may send is read, user properties in order (MQTT-3.3.2-18)."""
    block = paho_block(
        PacketTypes.PUBLISH, PayloadFormatIndicator=1, MessageExpiryInterval=30, ContentType="text/plain",
        ResponseTopic="re/1", CorrelationData=b"\x01\x02", TopicAlias=4, UserProperty=[("k", "1"), ("k", "2")],
    )  # fmt: skip
    read = parse_publish5(framed(publish("a/b", b"x", qos=2, packet_id=513, properties=block)))
    assert (read.qos, read.packet_id, read.payload) == (2, 513, b"x")
    assert read.properties.values == {
        "payload_format_indicator": 1, "message_expiry_interval": 30, "content_type": "text/plain",
        "response_topic": "re/1", "correlation_data": b"\x01\x02", "topic_alias": 4,
    }  # fmt: skip
    assert read.properties.user_properties == [("k", "1"), ("k", "2")]


def test_publish_by_alias_only_has_an_empty_topic() -> None:
    """3.3.2.3.4: a zero-length topic with a Topic Alias is well-formed; the connection looks the alias up."""
    read = parse_publish5(framed(publish("", b"x", properties=paho_block(PacketTypes.PUBLISH, TopicAlias=2))))
    assert (read.topic, read.properties.get("topic_alias")) == ("", 2)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (publish("a", b"", qos=1, packet_id=0), PROTOCOL_ERROR),  # MQTT-2.2.1-3
        (publish("a", b"", properties=b"\x02\x0b\x01"), PROTOCOL_ERROR),  # subscription id from a client, MQTT-3.3.4-6
        (packet(0x38, string(b"a") + NO_PROPERTIES), MALFORMED),  # QoS 0 with DUP, MQTT-3.3.1-2
        (packet(0x36, string(b"a") + b"\x00\x01\x00"), MALFORMED),  # QoS 3, MQTT-3.3.1-4
        (packet(0x30, b"\x00\x05ab"), MALFORMED),  # topic runs past the packet
        (packet(0x30, b"\x00"), MALFORMED),  # topic length cut short
        (packet(0x30, string(b"\xc3\x28") + b"\x00"), MALFORMED),  # topic not UTF-8, MQTT-1.5.4-1
        (packet(0x30, string(b"a\x00b") + b"\x00"), MALFORMED),  # U+0000 in the topic, MQTT-1.5.4-2
        (packet(0x30, string(b"a")), MALFORMED),  # no property length at all
        (publish("a", b"", properties=b"\x05\x11\x00\x00\x00\x01"), MALFORMED),  # Session Expiry in a PUBLISH
        (publish("a", b"", properties=b"\x06\x03\x00\x00\x03\x00\x00"), PROTOCOL_ERROR),  # Content Type twice
        (publish("a", b"", properties=b"\x03\x23\x00\x00"), PROTOCOL_ERROR),  # Topic Alias 0, MQTT-3.3.2-8
        (publish("a", b"", properties=b"\x02\x01\x02"), PROTOCOL_ERROR),  # Payload Format Indicator 2
        (publish("a", b"", properties=b"\x09\x23\x00\x01"), MALFORMED),  # property length past the packet
    ],
    ids=[
        "packet-id-0", "subscription-id", "dup-at-qos0", "qos3",
        "topic-past-end", "topic-length-cut", "topic-not-utf8", "topic-nul", "no-properties",
        "not-allowed", "duplicate", "alias-0", "format-2", "length-past-end",
    ],
)  # fmt: skip
def test_publish_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """A PUBLISH the standard refuses raises ProtocolViolation with 0x81 (malformed) or 0x82 (protocol error)."""
    assert refusal(parse_publish5, data) == code


@pytest.mark.parametrize("topic", ["a/+", "#", "a/#/b"])
def test_publish_to_a_topic_with_a_wildcard_is_refused(topic: str) -> None:
    """MQTT-3.3.2-2: a Topic Name holds no wildcard; the standard names no code (0x81, 0x82 and 0x90 all fit)."""
    assert refusal(parse_publish5, publish(topic, b"")) in (MALFORMED, PROTOCOL_ERROR, 0x90)


# -- PUBACK, PUBREC, PUBREL, PUBCOMP (3.4 to 3.7) ---------------------------------------------

ACK_FIRST = {PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70}


@pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
def test_ack_without_reason_code_means_success(kind: int) -> None:
    """3.4.2.1: a Remaining Length of 2 means reason code 0x00 and no properties."""
    assert parse_ack5(framed(packet(ACK_FIRST[kind], b"\x01\x02"))) == (0x0102, 0)


@pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
def test_ack_with_reason_code_and_no_properties(kind: int) -> None:
    """3.4.2.2.1: a Remaining Length of 3 is a reason code without a property block."""
    assert parse_ack5(framed(packet(ACK_FIRST[kind], b"\x00\x07\x92"))) == (7, 0x92)


@pytest.mark.parametrize("kind", [PUBACK, PUBREC, PUBREL, PUBCOMP])
def test_ack_with_reason_string_and_user_properties(kind: int) -> None:
    """3.4.2.2: Reason String and User Properties are allowed in every acknowledgement."""
    block = paho_block(PacketTypes.PUBACK, ReasonString="why", UserProperty=[("a", "b")])
    assert parse_ack5(framed(ack(kind, 9, 0x10, properties=block))) == (9, 0x10)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (packet(0x40, b"\x00\x00"), PROTOCOL_ERROR),  # packet id 0, MQTT-2.2.1-3
        (packet(0x62, b"\x00"), MALFORMED),  # packet id cut short
        (packet(0x40, b""), MALFORMED),  # no packet id at all
        (packet(0x40, b"\x00\x01\x00\x00x"), MALFORMED),  # a byte after the property block
        (ack(PUBREC, 1, 0, properties=paho_block(PacketTypes.PUBLISH, ContentType="x")), MALFORMED),  # not allowed
        (ack(PUBCOMP, 1, 0, properties=b"\x08\x1f\x00\x01a\x1f\x00\x01b"), PROTOCOL_ERROR),  # Reason String twice
        (ack(PUBREL, 1, 0, properties=b"\x05\x1f\x00\x01a"), MALFORMED),  # property length past the packet
    ],
    ids=["packet-id-0", "id-cut-short", "no-id", "trailing-bytes", "not-allowed", "duplicate", "past-end"],
)
def test_ack_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """An acknowledgement the standard refuses raises ProtocolViolation with 0x81 or 0x82."""
    assert refusal(parse_ack5, data) == code


# -- SUBSCRIBE (3.8) --------------------------------------------------------------------------


def paho_options(qos: int, **options: object) -> int:
    """A Subscription Options byte packed by paho-mqtt."""
    make: Any = SubscribeOptions
    return int(make(qos=qos, **options).pack()[0])


def test_subscribe_reads_filters_with_their_options_in_order() -> None:
    """3.8.3.1: QoS, No Local, Retain As Published and Retain Handling of each filter, in packet order."""
    data = subscribe(
        10, ("a/+", paho_options(1, noLocal=True, retainHandling=2)), ("b/#", paho_options(2, retainAsPublished=True))
    )
    assert parse_subscribe5(framed(data)) == (
        10, None, [Subscription5("a/+", 1, True, False, 2), Subscription5("b/#", 2, False, True, 0)]
    )  # fmt: skip


def test_subscribe_reads_its_subscription_identifier() -> None:
    """3.8.2.1.2: the Subscription Identifier (a Variable Byte Integer) applies to every filter of the packet."""
    block = paho_block(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=268_435_455, UserProperty=[("u", "v")])
    assert parse_subscribe5(framed(subscribe(1, ("t", 0), properties=block)))[1] == 268_435_455


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (subscribe(1, ("t", 0x40)), MALFORMED),  # reserved bit 6, MQTT-3.8.3-5
        (subscribe(1, ("t", 0x80)), MALFORMED),  # reserved bit 7, MQTT-3.8.3-5
        (subscribe(0, ("t", 0)), PROTOCOL_ERROR),  # packet id 0, MQTT-2.2.1-3
        (subscribe(1), PROTOCOL_ERROR),  # no filter, MQTT-3.8.3-2
        (packet(0x82, b"\x00\x01\x00" + string(b"t")), MALFORMED),  # filter without its options byte
        (packet(0x82, b"\x00\x01\x00\x00\x05ab"), MALFORMED),  # filter runs past the packet
        (packet(0x82, b"\x00\x01\x00" + string(b"\xff") + b"\x00"), MALFORMED),  # filter not UTF-8, MQTT-3.8.3-1
        (packet(0x82, b"\x00\x01"), MALFORMED),  # no property length
        (packet(0x80, b"\x00\x01\x00" + string(b"t") + b"\x00"), MALFORMED),  # fixed header flags 0, MQTT-3.8.1-1
        (subscribe(1, ("t", 0), properties=b"\x04\x0b\x01\x0b\x02"), PROTOCOL_ERROR),  # two subscription ids
        (subscribe(1, ("t", 0), properties=b"\x02\x0b\x00"), PROTOCOL_ERROR),  # subscription id 0
        (subscribe(1, ("t", 0), properties=b"\x03\x23\x00\x01"), MALFORMED),  # Topic Alias in a SUBSCRIBE
    ],
    ids=[
        "reserved-bit-6", "reserved-bit-7", "packet-id-0", "no-filter", "no-options", "filter-past-end",
        "filter-not-utf8", "no-properties", "header-flags", "two-ids", "id-0", "not-allowed",
    ],
)  # fmt: skip
def test_subscribe_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """A SUBSCRIBE the standard refuses raises ProtocolViolation with 0x81 or 0x82."""
    assert refusal(parse_subscribe5, data) == code


def test_subscribe_with_maximum_qos_3_is_a_protocol_error() -> None:
    """3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3" (0x82)."""
    assert refusal(parse_subscribe5, subscribe(1, ("t", 3))) == PROTOCOL_ERROR


def test_subscribe_with_retain_handling_3_is_a_protocol_error() -> None:
    """3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3" (0x82)."""
    assert refusal(parse_subscribe5, subscribe(1, ("t", 0x30))) == PROTOCOL_ERROR


def test_subscribe_with_an_empty_topic_filter_is_malformed() -> None:
    """MQTT-4.7.3-1: a Topic Filter is at least one character long (mosquitto and edgemq's 3.1.1 framing: 0x81)."""
    assert refusal(parse_subscribe5, subscribe(1, ("t", 0), ("", 0))) == MALFORMED


# -- UNSUBSCRIBE (3.10) -----------------------------------------------------------------------


def test_unsubscribe_reads_its_filters_in_order() -> None:
    """3.10.3: the filters of an UNSUBSCRIBE, after its properties (User Properties allowed, 3.10.2.1.2)."""
    data = unsubscribe(300, "a/+", "b/#", "$share/g/c", properties=props([("k", "v")]))
    assert parse_unsubscribe5(framed(data)) == (300, ["a/+", "b/#", "$share/g/c"])


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (unsubscribe(1), PROTOCOL_ERROR),  # no filter, MQTT-3.10.3-2
        (unsubscribe(0, "t"), PROTOCOL_ERROR),  # packet id 0, MQTT-2.2.1-3
        (unsubscribe(1, "t", properties=b"\x02\x0b\x01"), MALFORMED),  # Subscription Identifier not allowed
        (unsubscribe(1, "t", properties=b"\x04\x1f\x00\x01a"), MALFORMED),  # Reason String not allowed
        (packet(0xA2, b"\x00\x01\x00\x00\x03ab"), MALFORMED),  # filter runs past the packet
        (packet(0xA2, b"\x00\x01\x00" + string(b"a\x00")), MALFORMED),  # U+0000, MQTT-1.5.4-2
        (packet(0xA0, b"\x00\x01\x00" + string(b"t")), MALFORMED),  # fixed header flags 0, MQTT-3.10.1-1
    ],
    ids=["no-filter", "packet-id-0", "subscription-id", "reason-string", "past-end", "nul", "header-flags"],
)
def test_unsubscribe_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """An UNSUBSCRIBE the standard refuses raises ProtocolViolation with 0x81 or 0x82."""
    assert refusal(parse_unsubscribe5, data) == code


def test_unsubscribe_with_an_empty_topic_filter_is_malformed() -> None:
    """MQTT-4.7.3-1: a Topic Filter is at least one character long (mosquitto and edgemq's 3.1.1 framing: 0x81)."""
    assert refusal(parse_unsubscribe5, unsubscribe(1, "t", "")) == MALFORMED


# -- DISCONNECT (3.14) ------------------------------------------------------------------------


def test_disconnect_without_reason_code_is_normal_disconnection() -> None:
    """3.14.2.1: a Remaining Length of 0 means reason code 0x00 and no properties."""
    assert parse_disconnect5(framed(b"\xe0\x00")) == (0, Properties())


def test_disconnect_with_reason_code_only() -> None:
    """3.14.2.2.1: a Remaining Length of 1 is a reason code without a property block."""
    assert parse_disconnect5(framed(b"\xe0\x01\x04")) == (0x04, Properties())


def test_disconnect_reads_session_expiry_and_reason_string() -> None:
    """3.14.2.2.2, 3.14.2.2.3: the client may change its Session Expiry Interval and say why."""
    block = paho_block(PacketTypes.DISCONNECT, SessionExpiryInterval=120, ReasonString="bye")
    reason, read = parse_disconnect5(framed(disconnect(0, properties=block)))
    assert (reason, read.values) == (0, {"session_expiry_interval": 120, "reason_string": "bye"})


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (disconnect(0, properties=b"\x03\x23\x00\x01"), MALFORMED),  # Topic Alias not allowed
        (disconnect(0, properties=b"\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"), PROTOCOL_ERROR),  # twice
        (packet(0xE0, b"\x00\x00x"), MALFORMED),  # a byte after the property block
        (packet(0xE0, b"\x00\x04\x11\x00"), MALFORMED),  # property length past the packet
        (packet(0xE1, b""), MALFORMED),  # fixed header flags, MQTT-3.14.1-1
    ],
    ids=["not-allowed", "duplicate", "trailing", "past-end", "header-flags"],
)
def test_disconnect_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """A DISCONNECT the standard refuses raises ProtocolViolation with 0x81 or 0x82."""
    assert refusal(parse_disconnect5, data) == code


# -- framing at protocol level 5 (2.1, 2.2) ---------------------------------------------------


def test_auth_is_a_packet_type_at_level_5_only() -> None:
    """2.1.2: type 15 is AUTH in MQTT 5 (the connection refuses it later) and reserved before."""
    assert split_packet(b"\xf0\x00", 0, MAX, first_packet=False, v5=True) == (b"\xf0\x00", 2)
    with pytest.raises(ProtocolViolation):
        split_packet(b"\xf0\x00", 0, MAX, first_packet=False, v5=False)


def test_a_packet_over_the_maximum_size_is_refused_with_0x95() -> None:
    """3.1.2.11.4: a packet larger than the server's Maximum Packet Size is refused with 0x95 from its header."""
    with pytest.raises(ProtocolViolation) as refused:
        split_packet(b"\x30\xff\xff\x03", 0, 4096, first_packet=False, v5=True)
    assert refused.value.code == PACKET_TOO_LARGE
