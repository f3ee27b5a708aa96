"""MQTT 5.0 CONNECT and what follows from it: ``parse_connect`` at protocol level 5 (properties,
will properties, refusals with their reason code), ``V5Connect``, ``connack_properties``, and the
``MessageProperties`` a routed message carries (forwarded subset, reduced expiry).

Property blocks are packed with paho-mqtt's MQTT 5 encoder. Ids and sections: OASIS MQTT 5.0.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from broker.mqtt.framing import ProtocolViolation, parse_connect, split_packet
from broker.mqtt.message_properties import MessageProperties, property_block
from broker.mqtt.properties import MALFORMED, PROTOCOL_ERROR, Properties, decode_properties, encode_varint
from broker.mqtt.v5_session import ServerLimits, V5Connect, connack_properties
from tests.mqtt5_packets import Will, connect, props
from tests.mqtt_packets import packet

NOW = 1_800_000_000.0


def paho_block(kind: int, **values: object) -> bytes:
    """A property block packed by paho-mqtt (names as paho spells them)."""
    make: Any = PahoProperties
    properties = make(kind)
    for name, value in values.items():
        setattr(properties, name, value)
    return bytes(properties.pack())


def read_connect(data: bytes) -> Any:
    """``parse_connect`` of a CONNECT as the broker's reader hands it on."""
    found = split_packet(data, 0, 1 << 20, first_packet=True)
    assert found is not None
    return parse_connect(found[0])


def connect_refusal(data: bytes) -> int:
    """The reason code of the ProtocolViolation that reading the CONNECT ``data`` raises."""
    with pytest.raises(ProtocolViolation) as refused:
        read_connect(data)
    return refused.value.code


# -- parse_connect at level 5 (3.1) -----------------------------------------------------------


def test_connect_properties_are_read() -> None:
    """3.1.2.11: Session Expiry, Receive Maximum, Maximum Packet Size, Topic Alias Maximum and User Properties."""
    block = paho_block(
        PacketTypes.CONNECT, SessionExpiryInterval=300, ReceiveMaximum=20, MaximumPacketSize=4096,
        TopicAliasMaximum=5, RequestProblemInformation=0, UserProperty=[("site", "a")],
    )  # fmt: skip
    read = read_connect(connect("c5", keep_alive=30, properties=block))
    assert (read.protocol_name, read.level, read.client_id, read.keep_alive) == ("MQTT", 5, "c5", 30)
    assert read.properties.values == {
        "session_expiry_interval": 300, "receive_maximum": 20, "maximum_packet_size": 4096,
        "topic_alias_maximum": 5, "request_problem_information": 0,
    }  # fmt: skip
    assert read.properties.user_properties == [("site", "a")]
    assert read.will_properties is None


def test_will_properties_are_read_between_client_id_and_will_topic() -> None:
    """3.1.3.2: the Will Properties come after the Client Identifier and before the Will Topic."""
    block = paho_block(
        PacketTypes.WILLMESSAGE, WillDelayInterval=10, MessageExpiryInterval=60, ContentType="text/plain",
        ResponseTopic="re/w", CorrelationData=b"\x07", PayloadFormatIndicator=1, UserProperty=[("k", "v")],
    )  # fmt: skip
    read = read_connect(connect("c5", will=Will("will/t", b"gone", qos=1, retain=True, properties=block)))
    assert (read.will_topic, read.will_message, read.will_qos, read.will_retain) == ("will/t", b"gone", 1, True)
    assert read.will_properties.values == {
        "will_delay_interval": 10, "message_expiry_interval": 60, "content_type": "text/plain",
        "response_topic": "re/w", "correlation_data": b"\x07", "payload_format_indicator": 1,
    }  # fmt: skip
    assert read.will_properties.user_properties == [("k", "v")]


def test_a_311_connect_has_no_properties() -> None:
    """Protocol level 4 has no property blocks: the properties stay None."""
    body = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id"
    read = read_connect(packet(0x10, body))
    assert (read.level, read.client_id, read.properties, read.will_properties) == (4, "id", None, None)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (connect("c", properties=b"\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"), PROTOCOL_ERROR),  # 3.1.2.11.2
        (connect("c", properties=b"\x03\x21\x00\x00"), PROTOCOL_ERROR),  # Receive Maximum 0, 3.1.2.11.3
        (connect("c", properties=b"\x05\x27\x00\x00\x00\x00"), PROTOCOL_ERROR),  # Maximum Packet Size 0, 3.1.2.11.4
        (connect("c", properties=b"\x02\x17\x02"), PROTOCOL_ERROR),  # Request Problem Information 2, 3.1.2.11.7
        (connect("c", properties=b"\x02\x19\x05"), PROTOCOL_ERROR),  # Request Response Information 5, 3.1.2.11.6
        (connect("c", properties=b"\x03\x23\x00\x01"), MALFORMED),  # Topic Alias is not a CONNECT property
        (connect("c", properties=b"\x02\x7f\x00"), MALFORMED),  # no such property, 2.2.2.2
        (connect("c", properties=b"\x09\x11\x00"), MALFORMED),  # property length past the packet
        (connect("c", will=Will("w", b"", properties=b"\x05\x11\x00\x00\x00\x01")), MALFORMED),  # not a will one
        (connect("c", will=Will("w", b"", properties=b"\x04\x01\x01\x01\x00")), PROTOCOL_ERROR),  # given twice
        (connect("c", will=Will("w", b"", properties=b"\x02\x01\x02")), PROTOCOL_ERROR),  # Payload Format 2
        (connect("c", will=Will("w", b"", properties=b"\x07\x03\x00\x01\x00")), MALFORMED),  # past the packet
        (connect("c", will=Will("w", b"", properties=b"\x04\x03\x00\x01\x00")), MALFORMED),  # U+0000, MQTT-1.5.4-2
    ],
    ids=[
        "session-expiry-twice", "receive-max-0", "max-packet-0", "problem-info-2", "response-info-5",
        "topic-alias", "unknown", "past-end", "will-session-expiry", "will-twice", "will-format-2",
        "will-past-end", "will-nul",
    ],
)  # fmt: skip
def test_connect_property_refusals_carry_their_reason_code(data: bytes, code: int) -> None:
    """A CONNECT whose properties or will properties the standard refuses raises ProtocolViolation with 0x81 or 0x82."""
    assert connect_refusal(data) == code


def test_a_level_5_connect_cut_short_in_its_properties_is_malformed() -> None:
    """3.1.2.11: a CONNECT that ends where its property length should be is a Malformed Packet (0x81)."""
    assert connect_refusal(packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3c")) == MALFORMED


def test_authentication_data_without_a_method_is_a_protocol_error() -> None:
    """3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no Authentication Method"."""
    assert connect_refusal(connect("c", properties=b"\x04\x16\x00\x01\x00")) == PROTOCOL_ERROR


def test_a_client_identifier_holding_nul_is_malformed() -> None:
    """MQTT-1.5.4-2: a packet holding a UTF-8 string with U+0000 is a Malformed Packet (0x81)."""
    data = packet(0x10, b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + struct.pack("!H", 3) + b"a\x00b")
    assert connect_refusal(data) == MALFORMED


# -- V5Connect and connack_properties (3.1.2.11, 3.2.2.3) -------------------------------------


def test_v5_terms_default_to_the_standards_values() -> None:
    """3.1.2.11: no properties: session expiry 0, Receive Maximum 65 535, no size limit, problem information on."""
    terms = V5Connect.from_connect(read_connect(connect("c")))
    assert terms == V5Connect()
    assert (terms.session_expiry, terms.receive_maximum, terms.maximum_packet_size) == (0, 65535, 0)
    assert terms.request_problem_information


def test_v5_terms_take_the_clients_values() -> None:
    """3.1.2.11 and 3.1.3.2: the client's session expiry, limits and will delay become the connection's terms."""
    data = connect(
        "c",
        properties=props(session_expiry_interval=60, receive_maximum=3, maximum_packet_size=2048,
                         request_problem_information=0),
        will=Will("w", b"", properties=props(will_delay_interval=30, content_type="t")),
    )  # fmt: skip
    terms = V5Connect.from_connect(read_connect(data))
    assert (terms.session_expiry, terms.receive_maximum, terms.maximum_packet_size) == (60, 3, 2048)
    assert (terms.request_problem_information, terms.will_delay) == (False, 30)
    assert terms.will_properties is not None
    carried = MessageProperties.from_properties(terms.will_properties, NOW)
    assert carried is not None
    assert carried.forwarded == b"\x03\x00\x01t"


def test_the_wills_expiry_interval_starts_when_the_will_is_published() -> None:
    """3.1.3.2.4: the will's Message Expiry Interval is its lifetime from publication, not from the CONNECT."""
    data = connect("c", will=Will("w", b"gone", properties=props(message_expiry_interval=60)))
    terms = V5Connect.from_connect(read_connect(data))
    assert terms.will_properties is not None
    published = MessageProperties.from_properties(terms.will_properties, NOW + 120)  # two minutes later
    assert published is not None
    assert published.remaining(NOW + 120) == 60


LIMITS = ServerLimits(
    receive_maximum=65535, maximum_packet_size=1 << 20, topic_alias_maximum=0, shared_subscriptions=True
)


def test_connack_properties_say_only_what_differs_from_the_defaults() -> None:
    """3.2.2.3: with the default limits the CONNACK carries the server's Maximum Packet Size only."""
    assert connack_properties(V5Connect(), LIMITS, "c") == Properties({"maximum_packet_size": 1 << 20})


def test_connack_properties_carry_the_servers_limits() -> None:
    """3.2.2.3.3, 3.2.2.3.8, 3.2.2.3.13: Receive Maximum, Topic Alias Maximum, Shared Subscription Available 0."""
    limits = ServerLimits(10, 4096, 8, shared_subscriptions=False)
    assert connack_properties(V5Connect(), limits, "c").values == {
        "maximum_packet_size": 4096, "receive_maximum": 10, "topic_alias_maximum": 8,
        "shared_subscription_available": 0,
    }  # fmt: skip


def test_connack_properties_name_an_assigned_client_and_the_server_keep_alive() -> None:
    """3.2.2.3.7, 3.2.2.3.14: an assigned client id and an imposed keep alive are told to the client."""
    terms = V5Connect(assigned_client_id=True, server_keep_alive=120)
    values = connack_properties(terms, LIMITS, "auto-1").values
    assert (values["assigned_client_identifier"], values["server_keep_alive"]) == ("auto-1", 120)


# -- MessageProperties (3.3.2.3) --------------------------------------------------------------


def forwarded_of(message: MessageProperties) -> Properties:
    """The forwarded pairs of ``message`` read back as PUBLISH properties."""
    block = encode_varint(len(message.forwarded)) + message.forwarded
    return decode_properties(block, 0, "PUBLISH")[0]


def test_only_the_forwarded_properties_travel_with_the_message() -> None:
    """MQTT-3.3.2-15 to -20: format indicator, content type, response topic, correlation data, user properties only."""
    published = props(
        [("a", "1"), ("a", "2")], payload_format_indicator=1, content_type="c", response_topic="r",
        correlation_data=b"\x00", topic_alias=3,
    )  # fmt: skip
    message = MessageProperties.from_properties(published, NOW)
    assert message is not None
    assert message.expires_at is None
    assert forwarded_of(message) == props(
        [("a", "1"), ("a", "2")], payload_format_indicator=1, content_type="c", response_topic="r",
        correlation_data=b"\x00",
    )  # fmt: skip


@pytest.mark.parametrize("published", [Properties(), props(topic_alias=4)], ids=["none", "alias-only"])
def test_a_message_with_nothing_to_forward_carries_none(published: Properties) -> None:
    """A PUBLISH without forwarded properties or expiry gives None: the message carries nothing."""
    assert MessageProperties.from_properties(published, NOW) is None


def test_the_expiry_interval_sent_on_is_reduced_by_the_time_waited() -> None:
    """MQTT-3.3.2-6: the interval sent on is the received one minus the time the message waited (whole seconds up)."""
    message = MessageProperties.from_properties(props(message_expiry_interval=60), NOW)
    assert message is not None
    assert (message.forwarded, message.expires_at) == (b"", NOW + 60)
    assert message.remaining(NOW + 10) == 50
    assert message.remaining(NOW + 10.5) == 50


def test_the_expiry_interval_sent_on_is_at_least_one_second() -> None:
    """3.3.2.3.3: a message in its last second is sent on with 1, never 0 (which would read as no expiry left)."""
    message = MessageProperties(expires_at=NOW + 60)
    assert message.remaining(NOW + 59.9) == 1


def test_a_message_past_its_expiry_is_expired() -> None:
    """MQTT-3.3.2-5: from its deadline on the message is expired (and dropped, not delivered)."""
    message = MessageProperties(expires_at=NOW + 60)
    assert not message.expired(NOW + 59.99)
    assert message.expired(NOW + 60)


def test_the_outgoing_block_of_a_message_without_properties_is_empty() -> None:
    """3.3.2.3: no properties and no matching subscription identifiers give an empty block (length 0)."""
    assert property_block(None, NOW) == b"\x00"


def test_the_outgoing_block_carries_expiry_forwarded_properties_and_subscription_ids() -> None:
    """MQTT-3.3.2-6, MQTT-3.3.4-3: remaining expiry, forwarded properties and one id per matching subscription."""
    message = MessageProperties.from_properties(props([("k", "v")], message_expiry_interval=30, content_type="c"), NOW)
    read, _ = decode_properties(property_block(message, NOW + 5, [7, 300]), 0, "PUBLISH")
    assert read == Properties({"message_expiry_interval": 25, "content_type": "c"}, [("k", "v")], [7, 300])


def test_a_message_expiry_interval_of_0_means_no_expiry() -> None:
    """3.3.2.3.3 leaves 0 open: read as no expiry (as mosquitto does), so an online subscriber gets it."""
    carried = MessageProperties.from_properties(Properties({"message_expiry_interval": 0, "content_type": "t"}), NOW)
    assert carried is not None
    assert carried.expires_at is None
    assert not carried.expired(NOW + 3600)
