"""Fuzz of the MQTT 5.0 packet reading (broker/mqtt/framing.py, v5_packets.py, v5_session.py):
random bytes and mutated well-formed packets, read as the broker reads them (``split_packet(v5=True)``,
then the parser for the packet's type, then what the connection builds from the result), either
read or are refused with ProtocolViolation carrying 0x81, 0x82 or 0x95; never another exception.
Properties are a classic parser bug source. Bounded: 200 examples per test (scripts/fuzz_mqtt5.py
fuzzes a live broker at length).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.mqtt.framing import ProtocolViolation, parse_connect, split_packet
from broker.mqtt.message_properties import MessageProperties, property_block
from broker.mqtt.properties import encode_varint
from broker.mqtt.v5_packets import parse_ack5, parse_disconnect5, parse_publish5, parse_subscribe5, parse_unsubscribe5
from broker.mqtt.v5_session import V5Connect
from tests.mqtt5_packets import (
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Will,
    ack,
    connect,
    disconnect,
    options,
    props,
    publish,
    subscribe,
    unsubscribe,
)

MAX_SIZE = 4096
CODES = (0x81, 0x82, 0x95)  # malformed, protocol error, packet too large
NOW = 1_800_000_000.0
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FORWARDED = props([("k", "v"), ("k", "w")], payload_format_indicator=1, content_type="c", response_topic="r/1")
VALID = [
    publish("a/b", b"payload"),
    publish("a/b", b"p", qos=1, packet_id=1, retain=True, properties=FORWARDED),
    publish("", b"p", qos=2, packet_id=9, properties=props(topic_alias=3, message_expiry_interval=5)),
    publish("t", b"", properties=props(correlation_data=b"\x00\x01")),
    ack(PUBACK, 1, 0x10, properties=props([("a", "b")], reason_string="r")),
    ack(PUBREC, 2),
    ack(PUBREL, 3, 0x92),
    ack(PUBCOMP, 4),
    b"\x40\x02\x00\x05",
    subscribe(1, ("a/+", options(1, no_local=True)), ("b/#", options(2, retain_handling=1))),
    subscribe(2, ("$share/g/t", options(0)), properties=props(subscription_identifier=7)),
    unsubscribe(3, "a/+", "b", properties=props([("u", "1")])),
    disconnect(0, properties=props(session_expiry_interval=0, reason_string="bye")),
    disconnect(0x04),
    b"\xe0\x00",
    b"\xc0\x00",
]
"""Well-formed packets a client sends after its CONNECT, with properties where they may have some."""
CONNECTS = [
    connect("c5", properties=props(session_expiry_interval=60, receive_maximum=5, maximum_packet_size=512)),
    connect(
        "c5",
        properties=props([("u", "v")], topic_alias_maximum=3),
        will=Will("w/t", b"gone", qos=1, properties=props(will_delay_interval=2, message_expiry_interval=9)),
        username="user",
    ),
    connect("", clean_start=False),
]
FIRST_BYTES = sorted({data[0] for data in VALID} | {0x10, 0x36, 0x38, 0x80, 0xA0, 0xF0, 0x00, 0x22})


def read_stream(data: bytes, *, first_packet: bool = False) -> None:
    """Read ``data`` as the broker reads a connection: whole packets, each parsed and turned into
    what the connection keeps; a ProtocolViolation ends the stream and must carry a known code."""
    start, first, code = 0, first_packet, 0
    try:
        while (found := split_packet(data, start, MAX_SIZE, first_packet=first, v5=not first)) is not None:
            raw, start = found
            read_packet(raw, first)
            first = False
    except ProtocolViolation as refused:
        code = refused.code
    assert code in (0, *CODES), f"refused with code {code:#x}"


def read_packet(raw: bytes, first: bool) -> None:
    """What the broker does with one packet's bytes (see Mqtt5Connection._read5)."""
    kind = raw[0] >> 4
    if first:
        connect_read = parse_connect(raw)
        if connect_read.level == 5:
            terms = V5Connect.from_connect(connect_read)
            if terms.will_properties is not None:  # what the will carries when it is published
                will = MessageProperties.from_properties(terms.will_properties, NOW)
                property_block(will, NOW + 1)
    elif kind == 3:
        published = parse_publish5(raw)
        assert raw.endswith(published.payload)
        message = MessageProperties.from_properties(published.properties, NOW)
        property_block(message, NOW + 1, [1, 300])
    elif kind in (4, 5, 6, 7):
        parse_ack5(raw)
    elif kind == 8:
        parse_subscribe5(raw)
    elif kind == 10:
        parse_unsubscribe5(raw)
    elif kind == 14:
        parse_disconnect5(raw)


def framed(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def body_of(data: bytes) -> bytes:
    index = 1
    while data[index] & 0x80:
        index += 1
    return data[index + 1 :]


@st.composite
def mutated(draw: st.DrawFn, source: bytes) -> bytes:
    """``source`` with a few bytes replaced, inserted or deleted, or cut short."""
    data = bytearray(source)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        if action == "replace" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        elif action == "cut":
            del data[where:]
    return bytes(data)


@st.composite
def mutated_bodies(draw: st.DrawFn, sources: list[bytes]) -> bytes:
    """A valid packet whose body is mutated, framed again with the right Remaining Length (so the
    mutation reaches the parser instead of stopping at the fixed header)."""
    source = draw(st.sampled_from(sources))
    return framed(source[0], draw(mutated(body_of(source))))


@FUZZ
@given(st.binary(max_size=96))
def test_random_bytes_are_read_or_refused(data: bytes) -> None:
    """Any bytes after a CONNECT are read as packets or refused with 0x81, 0x82 or 0x95."""
    read_stream(data)


@FUZZ
@given(st.sampled_from(FIRST_BYTES), st.binary(max_size=80))
def test_random_bodies_of_each_packet_type_are_read_or_refused(first: int, body: bytes) -> None:
    """A well-framed packet of any type with a random body is parsed or refused with a known code."""
    read_stream(framed(first, body))


@FUZZ
@given(st.sampled_from(VALID).flatmap(mutated))
def test_mutated_packets_are_read_or_refused(data: bytes) -> None:
    """A well-formed packet with bytes replaced, inserted, deleted or cut (its header too) is read or refused."""
    read_stream(data)


@FUZZ
@given(mutated_bodies(VALID))
def test_mutated_bodies_are_read_or_refused(data: bytes) -> None:
    """A well-formed packet with a mutated body and a correct Remaining Length is parsed or refused."""
    read_stream(data)


@FUZZ
@given(st.one_of(mutated_bodies(CONNECTS), st.sampled_from(CONNECTS).flatmap(mutated)))
def test_mutated_v5_connects_are_read_or_refused(data: bytes) -> None:
    """A mutated MQTT 5 CONNECT (properties, will properties) is read by parse_connect or refused."""
    read_stream(data, first_packet=True)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(VALID), mutated_bodies(VALID)), min_size=2, max_size=6))
def test_streams_of_mutated_packets_are_read_or_refused(packets: list[bytes]) -> None:
    """Several packets in one buffer, some mutated, are read in turn until one is refused."""
    read_stream(b"".join(packets))
