"""MQTT 5.0 properties (section 2.2.2): what decodes, what is refused with which reason code, and
that arbitrary bytes only ever raise PropertyError (properties are a classic parser bug source)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.mqtt.properties import (
    MALFORMED,
    PROTOCOL_ERROR,
    SPECS,
    Kind,
    Properties,
    PropertyError,
    decode_properties,
    decode_varint,
    encode_properties,
    encode_varint,
)


def block(*pairs: bytes) -> bytes:
    """A property block: its length, then the encoded pairs."""
    body = b"".join(pairs)
    return encode_varint(len(body)) + body


def string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


@pytest.mark.parametrize(("value", "encoded"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                                                (16_383, b"\xff\x7f"), (268_435_455, b"\xff\xff\xff\x7f")])  # fmt: skip
def test_variable_byte_integers_follow_the_standard(value: int, encoded: bytes) -> None:
    """1.5.5: the table of the standard's example values, both ways."""
    assert encode_varint(value) == encoded
    assert decode_varint(encoded, 0) == (value, len(encoded))


def test_a_connect_block_decodes_by_name() -> None:
    """Session expiry, receive maximum and user properties (in order, repeatable) of a CONNECT."""
    data = block(
        b"\x11" + (3600).to_bytes(4, "big"),
        b"\x21" + (10).to_bytes(2, "big"),
        b"\x26" + string("a") + string("1"),
        b"\x26" + string("a") + string("2"),
    )
    properties, end = decode_properties(data + b"rest", 0, "CONNECT")
    assert end == len(data)
    assert properties.get("session_expiry_interval") == 3600
    assert properties.get("receive_maximum") == 10
    assert properties.user_properties == [("a", "1"), ("a", "2")]


def test_a_publish_may_carry_several_subscription_identifiers() -> None:
    """3.3.2.3.8: a PUBLISH to a client carries one identifier per matching subscription."""
    properties, _ = decode_properties(block(b"\x0b\x01", b"\x0b\x80\x01"), 0, "PUBLISH")
    assert properties.subscription_identifiers == [1, 128]


@pytest.mark.parametrize(
    ("data", "packet", "code"),
    [
        (block(b"\x11" + bytes(4), b"\x11" + bytes(4)), "CONNECT", PROTOCOL_ERROR),  # twice (3.1.2.11.2)
        (block(b"\x0b\x01", b"\x0b\x02"), "SUBSCRIBE", PROTOCOL_ERROR),  # one identifier per SUBSCRIBE
        (block(b"\x21\x00\x00"), "CONNECT", PROTOCOL_ERROR),  # receive maximum 0 (3.1.2.11.3)
        (block(b"\x27" + bytes(4)), "CONNECT", PROTOCOL_ERROR),  # maximum packet size 0 (3.1.2.11.4)
        (block(b"\x23\x00\x00"), "PUBLISH", PROTOCOL_ERROR),  # topic alias 0 (3.3.2.3.4)
        (block(b"\x17\x02"), "CONNECT", PROTOCOL_ERROR),  # request problem information 2 (3.1.2.11.7)
        (block(b"\x01\x05"), "PUBLISH", PROTOCOL_ERROR),  # payload format indicator 5
        (block(b"\x23\x00\x01"), "CONNECT", MALFORMED),  # a PUBLISH property in a CONNECT (2.2.2.2)
        (block(b"\x7f\x00"), "CONNECT", MALFORMED),  # no such property
        (block(b"\x03" + b"\x00\x05ab"), "PUBLISH", MALFORMED),  # string cut short
        (block(b"\x03" + b"\x00\x02\xc3\x28"), "PUBLISH", MALFORMED),  # not UTF-8 (1.5.4)
        (block(b"\x03" + b"\x00\x01\x00"), "PUBLISH", MALFORMED),  # U+0000 (MQTT-1.5.4-2)
        (b"\x05\x11\x00", "CONNECT", MALFORMED),  # length past the packet
        (b"\xff\xff\xff\xff\x01", "CONNECT", MALFORMED),  # a five-byte length
    ],
    ids=[
        "twice",
        "two-sub-ids",
        "receive-max-0",
        "max-packet-0",
        "alias-0",
        "problem-info-2",
        "format-5",
        "wrong-packet",
        "unknown",
        "short-string",
        "bad-utf8",
        "nul",
        "past-end",
        "long-varint",
    ],
)
def test_refusals_carry_the_standards_reason_code(data: bytes, packet: str, code: int) -> None:
    """Malformed blocks are 0x81, duplicated or out-of-range values 0x82."""
    with pytest.raises(PropertyError) as refused:
        decode_properties(data, 0, packet)  # type: ignore[arg-type]
    assert refused.value.code == code


def _value(kind: Kind) -> st.SearchStrategy[int | str | bytes]:
    text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
    strategies: dict[Kind, st.SearchStrategy[int | str | bytes]] = {
        Kind.BYTE: st.integers(0, 1),
        Kind.TWO: st.integers(1, 0xFFFF),
        Kind.FOUR: st.integers(1, 0xFFFF_FFFF),
        Kind.VARINT: st.integers(1, 268_435_455),
        Kind.STRING: text,
        Kind.BINARY: st.binary(max_size=20),
    }
    return strategies[kind]


@st.composite
def publish_properties(draw: st.DrawFn) -> Properties:
    """Valid properties of a PUBLISH."""
    allowed = [(i, s) for i, s in SPECS.items() if "PUBLISH" in s.packets and s.kind is not Kind.PAIR and i != 0x0B]
    chosen = draw(st.lists(st.sampled_from(allowed), unique=True))
    values = {spec.name: draw(_value(spec.kind)) for _, spec in chosen}
    text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=10)
    users = draw(st.lists(st.tuples(text, text), max_size=3))
    ids = draw(st.lists(st.integers(1, 268_435_455), max_size=3))
    return Properties(values, users, ids)


@given(publish_properties())
def test_encoding_then_decoding_gives_the_same_properties(properties: Properties) -> None:
    """Round trip: what is encoded decodes to the same values, user properties and identifiers."""
    data = encode_properties(properties)
    decoded, end = decode_properties(data, 0, "PUBLISH")
    assert end == len(data)
    assert decoded == properties


@settings(max_examples=500)
@given(st.binary(max_size=64), st.sampled_from(["CONNECT", "PUBLISH", "SUBSCRIBE", "DISCONNECT", "WILL"]))
def test_arbitrary_bytes_only_ever_raise_property_error(data: bytes, packet: str) -> None:
    """Fuzz: any input decodes or is refused with 0x81/0x82, never another exception or an end past the data."""
    code, end = 0, 0
    try:
        _, end = decode_properties(data, 0, packet)  # type: ignore[arg-type]
    except PropertyError as refused:
        code = refused.code
    assert code in (0, MALFORMED, PROTOCOL_ERROR)
    assert end <= len(data)
