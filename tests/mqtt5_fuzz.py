"""A live fuzz of edgemq's MQTT 5 protocol level, shared by tests/integration/test_mqtt5_fuzz.py
(a bounded round) and scripts/fuzz_mqtt5.py (long runs).

Each case is one raw TCP client: a valid MQTT 5 CONNECT (or a mutated one), then packets of one
family (bad properties, cut short, oversize, bad topic aliases, mutated, garbage, protocol
errors), then a PINGREQ when every packet is whole, so that the broker's PINGRESP or its closing
shows it has read them all. After each case the broker must still serve a paho-mqtt MQTTv5
publish/subscribe round trip and must not have logged an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker import EdgeBroker
from broker.mqtt.properties import encode_varint
from broker.testing.helpers import wait_until
from tests.helpers import WAIT
from tests.integration.paho5_client import Paho5Client
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
    parse,
    props,
    publish,
    subscribe,
    unsubscribe,
)
from tests.mqtt_packets import RawClient

__all__ = ["FAMILIES", "FUZZ_MQTT", "Case", "draw_case", "fuzz_round", "loud"]

FUZZ_MQTT = {"max_packet_size": 2048, "topic_alias_maximum": 4, "receive_maximum": 3}
"""The broker's ``mqtt`` settings for the fuzz: small limits, so that the fuzz crosses them."""
PINGREQ, PINGRESP = b"\xc0\x00", 0xD0
LOUD_LOGGERS = ("edgemq", "amqtt", "asyncio", "broker", "admin_api", "uvicorn")
UNEXPECTED = "reading ended"
"""What Connection.serve logs, at DEBUG and without a traceback, for an exception its read loop did
not expect (a parser's bug shows only there): the ``edgemq.mqtt`` logger must be at DEBUG."""


@dataclass(frozen=True)
class ClientTerms:
    """What a fuzz client's CONNECT allows the broker to send it (3.1.2.11)."""

    maximum_packet_size: int = 0
    """0: no limit."""
    receive_maximum: int = 65535
    topic_alias_maximum: int = 0


@dataclass(frozen=True)
class Case:
    """One fuzz connection: its CONNECT, then its packets; ``terms`` is None for a mutated CONNECT."""

    family: str
    client_id: str
    connect: bytes
    packets: tuple[bytes, ...]
    terms: ClientTerms | None

    def describe(self) -> str:
        """The case's bytes in hex, enough to replay it."""
        shown = " ".join(data.hex() for data in self.packets)
        return f"{self.family} case {self.client_id}: CONNECT {self.connect.hex()} then {shown}"


def is_whole(data: bytes) -> bool:
    """Whether ``data`` is exactly one packet by its Remaining Length (so a PINGREQ after it is read
    as a packet of its own)."""
    length, index = 0, 1
    for shift in range(4):
        if index >= len(data):
            return False
        byte = data[index]
        index += 1
        length |= (byte & 0x7F) << (7 * shift)
        if not byte & 0x80:
            return index + length == len(data)
    return False


def frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def body_of(data: bytes) -> bytes:
    index = 1
    while data[index] & 0x80:
        index += 1
    return data[index + 1 :]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """``data`` with one to four bytes replaced, runs inserted or deleted."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randint(0, len(out))
        action = rng.choice(("replace", "insert", "delete"))
        if action == "replace" and where < len(out):
            out[where] = rng.randrange(256)
        elif action == "insert":
            out[where:where] = rng.randbytes(rng.randint(1, 6))
        else:
            del out[where : where + rng.randint(1, 6)]
    return bytes(out)


def mutate_body(rng: random.Random, data: bytes) -> bytes:
    """``data`` with its body mutated and its Remaining Length written again to match."""
    return frame(data[0], mutate(rng, body_of(data)))


TOPICS = ("fuzz/a", "fuzz/b/c", "fuzz/é", "fuzz/$x", "$SYS/fuzz", "fuzz/a/+", "")
FORWARDED = props([("k", "v")], payload_format_indicator=1, content_type="c", response_topic="fuzz/r")


def valid_packets(rng: random.Random) -> list[bytes]:
    """Well-formed packets (with properties) a client may send after its CONNECT."""
    packet_id = rng.randint(1, 0xFFFF)
    retained = publish(  # on one of ten topics, of any size: what later subscribers get
        f"fuzz/r/{rng.randrange(10)}", bytes(rng.randint(0, 300)), qos=rng.randint(0, 2), packet_id=packet_id,
        retain=True, properties=FORWARDED,
    )  # fmt: skip
    return [
        publish("fuzz/a", b"v5", qos=rng.randint(0, 2), packet_id=packet_id, properties=FORWARDED),
        publish("fuzz/b", b"", properties=props(message_expiry_interval=rng.randint(1, 5), correlation_data=b"\x01")),
        publish("fuzz/c", b"r", qos=1, packet_id=packet_id, retain=True),
        subscribe(packet_id, ("fuzz/#", options(1, no_local=True, retain_handling=rng.randint(0, 2)))),
        subscribe(packet_id, ("$share/g/fuzz/+", options(2)), properties=props(subscription_identifier=9)),
        unsubscribe(packet_id, "fuzz/#", "nothing", properties=props([("u", "1")])),
        ack(rng.choice((PUBACK, PUBREC, PUBREL, PUBCOMP)), packet_id, rng.choice((0, 0x10, 0x80, 0x92))),
        retained,
        subscribe(packet_id, ("fuzz/r/#", options(2))),
    ]


def _valid(rng: random.Random) -> list[bytes]:
    chosen = rng.sample(valid_packets(rng), rng.randint(1, 7))
    if rng.random() < 0.3:  # the client ends: normally, or asking for its will (0x04)
        chosen.append(disconnect(rng.choice((0, 4)), properties=props(reason_string="bye")))
    return chosen


def bad_block(rng: random.Random) -> bytes:
    """A property block the standard refuses, or random bytes with a matching length."""
    choices = (
        b"\x06\x03\x00\x00\x03\x00\x00",  # Content Type twice
        b"\x05\x11\x00\x00\x00\x01",  # Session Expiry (not a PUBLISH, SUBSCRIBE or ack property)
        b"\x03\x23\x00\x00",  # Topic Alias 0
        b"\x02\x0b\x00",  # Subscription Identifier 0
        b"\x04\x0b\x01\x0b\x02",  # Subscription Identifier twice
        b"\x09\x01\x01",  # length past the packet
        b"\x05\x03\x00\x02\xc3\x28",  # not UTF-8
        b"\x07\x26\x00\x01\x00\x00\x01a",  # U+0000 in a user property
        b"\x06\xff\xff\xff\xff\x7f\x00",  # identifier longer than four bytes
        b"\xff\xff\xff\xff\x7f",  # property length longer than four bytes
        b"\x02\x01\x07",  # Payload Format Indicator 7
        b"\x02\x7f\x00",  # no such property
    )
    if rng.random() < 0.3:
        body = rng.randbytes(rng.randint(0, 24))
        return encode_varint(len(body)) + body
    return rng.choice(choices)


def _bad_properties(rng: random.Random) -> list[bytes]:
    block, packet_id = bad_block(rng), rng.randint(1, 0xFFFF)
    makers: list[Callable[[], bytes]] = [
        lambda: publish(rng.choice(TOPICS), b"x", qos=rng.randint(0, 2), packet_id=packet_id, properties=block),
        lambda: subscribe(packet_id, ("fuzz/#", options(1)), properties=block),
        lambda: unsubscribe(packet_id, "fuzz/#", properties=block),
        lambda: ack(rng.choice((PUBACK, PUBREC, PUBREL, PUBCOMP)), packet_id, 0, properties=block),
        lambda: disconnect(0, properties=block),
    ]
    return [*rng.sample(valid_packets(rng), 2), rng.choice(makers)()]


def _cut_short(rng: random.Random) -> list[bytes]:
    whole = rng.choice([*valid_packets(rng), publish("fuzz/a", bytes(300), properties=FORWARDED)])
    return [whole[: rng.randint(1, len(whole) - 1)]]


def _oversize(rng: random.Random) -> list[bytes]:
    limit = int(FUZZ_MQTT["max_packet_size"])
    return [
        rng.choice(
            (
                b"\x30" + encode_varint(rng.randint(limit + 1, 268_435_455)) + b"\x00\x01a",  # announced, not sent
                publish("fuzz/big", bytes(rng.randint(limit, 2 * limit)), properties=FORWARDED),  # sent whole
                b"\x30\xff\xff\xff\xff\x01",  # a Remaining Length of five bytes
                publish("fuzz/a", b"", properties=props([("k", "v" * 300)] * 8)),  # properties over the limit
            )
        )
    ]


def _aliases(rng: random.Random) -> list[bytes]:
    maximum = int(FUZZ_MQTT["topic_alias_maximum"])
    alias = rng.randint(1, maximum)
    steps = [
        publish("fuzz/alias", b"set", properties=props(topic_alias=alias)),
        publish("", b"by alias", qos=1, packet_id=1, properties=props(topic_alias=alias)),
        publish("fuzz/other", b"moved", properties=props(topic_alias=alias)),
        publish("", b"unset", properties=props(topic_alias=rng.randint(1, maximum))),
        publish("", b"over", properties=props(topic_alias=rng.randint(maximum + 1, 0xFFFF))),
        publish("", b"zero", properties=b"\x03\x23\x00\x00"),
        publish("", b"none"),
        publish("fuzz/x", b"twice", properties=b"\x06\x23\x00\x01\x23\x00\x02"),
    ]
    return rng.sample(steps, rng.randint(1, len(steps)))


def _mutated(rng: random.Random) -> list[bytes]:
    chosen = rng.choice(valid_packets(rng))
    return [mutate_body(rng, chosen) if rng.random() < 0.6 else mutate(rng, chosen)]


def _garbage(rng: random.Random) -> list[bytes]:
    if rng.random() < 0.5:
        return [rng.randbytes(rng.randint(1, 64))]
    return [frame(rng.randrange(256), rng.randbytes(rng.randint(0, 64)))]  # whole, of any type and flags


def _protocol_errors(rng: random.Random) -> list[bytes]:
    packet_id = rng.randint(1, 0xFFFF)
    choices = (
        connect("again"),  # a second CONNECT, MQTT-3.1.0-2
        b"\xf0\x00",  # AUTH, never offered
        b"\x20\x03\x00\x00\x00",  # a CONNACK from a client
        disconnect(0, properties=props(session_expiry_interval=60)),  # expiry after 0, MQTT-3.14.2-2
        subscribe(packet_id, ("$share/g/t", options(1, no_local=True))),  # MQTT-3.8.3-4
        subscribe(packet_id, ("t", 3)),  # QoS 3
        subscribe(packet_id, ("t", 0xC0)),  # reserved option bits
        subscribe(packet_id, ("", 0)),  # empty filter
        publish("fuzz/q2", b"", qos=2, packet_id=0),  # packet id 0
        ack(PUBREL, packet_id),  # PUBREL for nothing
        b"\x38\x04\x00\x01a\x00",  # QoS 0 with DUP
    )
    over_receive_maximum = [publish("fuzz/q2", b"", qos=2, packet_id=n) for n in range(1, 6)]  # 3 allowed
    return [*rng.sample(choices, rng.randint(1, 3)), *(over_receive_maximum if rng.random() < 0.3 else ())]


def _flood(rng: random.Random) -> list[bytes]:
    """Ten retained QoS 1 messages (QoS 2 ones would cross the broker's Receive Maximum), then a
    subscription to all of them: the broker must keep within the client's Receive Maximum and
    Maximum Packet Size."""
    retained = [
        publish(f"fuzz/r/{n}", bytes(rng.randint(0, 300)), qos=1, packet_id=n + 1, retain=True,
                properties=FORWARDED if rng.random() < 0.5 else None)
        for n in range(10)
    ]  # fmt: skip
    return [*retained, subscribe(11, ("fuzz/r/#", options(rng.randint(1, 2))))]


FAMILIES: dict[str, Callable[[random.Random], list[bytes]]] = {
    "flood": _flood,
    "bad-properties": _bad_properties,
    "cut-short": _cut_short,
    "oversize": _oversize,
    "aliases": _aliases,
    "mutated": _mutated,
    "garbage": _garbage,
    "protocol-errors": _protocol_errors,
    "valid": _valid,
    "bad-connect": lambda rng: [],
}
"""Each family's packets after the CONNECT (bad-connect: the CONNECT itself is mutated)."""


def a_connect(rng: random.Random, client_id: str) -> tuple[bytes, ClientTerms]:
    """A valid MQTT 5 CONNECT with some of its properties and sometimes a will, and its terms."""
    values: dict[str, int | str | bytes] = {}
    if rng.random() < 0.5:
        values["topic_alias_maximum"] = rng.randint(0, 10)
    if rng.random() < 0.5:
        values["receive_maximum"] = rng.randint(1, 5)
    if rng.random() < 0.3:
        values["maximum_packet_size"] = rng.randint(64, 4096)
    if rng.random() < 0.2:
        values["session_expiry_interval"] = rng.randint(1, 3)
    will = None
    if rng.random() < 0.3:
        delay = props(will_delay_interval=rng.randint(0, 2))
        will = Will("fuzz/will", b"gone", qos=rng.randint(0, 2), properties=delay)
    terms = ClientTerms(
        int(values.get("maximum_packet_size", 0)),
        int(values.get("receive_maximum", 65535)),
        int(values.get("topic_alias_maximum", 0)),
    )
    return connect(client_id, properties=props([("fuzz", "1")], **values), will=will), terms


def draw_case(rng: random.Random, number: int, family: str | None = None) -> Case:
    """Case ``number``: of ``family``, or of one drawn at random."""
    family = family or rng.choice(sorted(FAMILIES))
    client_id = f"fuzz-{number}"
    connect_bytes, terms = a_connect(rng, client_id)
    if family == "bad-connect":
        connect_bytes = mutate_body(rng, connect_bytes) if rng.random() < 0.7 else mutate(rng, connect_bytes)
        return Case(family, client_id, connect_bytes, (), None)
    return Case(family, client_id, connect_bytes, tuple(FAMILIES[family](rng)), terms)


def _check_sent(first: int, body: bytes, terms: ClientTerms, unacknowledged: int) -> int:
    """Check a packet the broker sent against the client's terms (MQTT-3.1.2-24: no packet over
    its Maximum Packet Size; MQTT-3.3.4-9: no more unacknowledged QoS 1/2 PUBLISHes than its
    Receive Maximum; MQTT-3.3.2-8 and -12: topic aliases within its maximum) and that it is a
    well-formed MQTT 5 packet; the unacknowledged count after it."""
    size = 1 + len(encode_varint(len(body))) + len(body)
    shown = f"{first:#x} {body[:64].hex()}"
    assert not terms.maximum_packet_size or size <= terms.maximum_packet_size, f"{size} bytes: {shown}"
    try:
        sent = parse(first, body)
    except (ValueError, IndexError, struct.error) as exc:
        raise AssertionError(f"the broker sent a malformed packet {shown}: {exc!r}") from None
    if sent.kind == 3:
        alias = sent.properties.get("topic_alias")
        assert alias is None or 1 <= int(alias) <= terms.topic_alias_maximum, f"topic alias {alias!r}: {shown}"
        if sent.qos:
            unacknowledged += 1
            assert unacknowledged <= terms.receive_maximum, f"{unacknowledged} unacknowledged: {shown}"
    return unacknowledged


async def _read_until_end(client: RawClient, case: Case) -> str:
    """What the broker did: answered the PINGREQ ("alive"), sent DISCONNECT then closed, or closed;
    every packet it sent is checked against the client's terms."""
    reason = None
    acks = sum(1 for data in case.packets if data[:1] in (b"\x40", b"\x50", b"\x70"))  # may acknowledge its own
    unacknowledged = -acks
    try:
        while True:
            first, body = await client.read_packet(WAIT)
            if case.terms is not None:
                unacknowledged = _check_sent(first, body, case.terms, unacknowledged)
            if first == PINGRESP:
                return "alive"
            if first >> 4 == 14:
                reason = body[0] if body else 0
    except TimeoutError:  # an OSError too: neither an answer nor an end
        raise
    except (asyncio.IncompleteReadError, OSError):
        return "closed" if reason is None else f"DISCONNECT {reason:#04x}"


async def send_case(address: tuple[str, int], case: Case) -> str:
    """Play ``case`` on a raw connection; how it ended. TimeoutError if the broker neither answers
    nor closes: it is stuck on that connection."""
    async with RawClient.open(address) as client:
        await client.send(case.connect)
        if not is_whole(case.connect):
            with contextlib.suppress(OSError):  # the broker may have closed already
                client.writer.write_eof()
            return "CONNECT cut short: " + await _read_until_end(client, case)
        try:
            first, body = await client.read_packet(WAIT)  # CONNACK
        except TimeoutError:
            raise
        except (asyncio.IncompleteReadError, OSError):
            if case.family == "bad-connect":
                return "closed without CONNACK"
            raise
        if case.family != "bad-connect":
            assert (first, body[1]) == (0x20, 0), f"valid CONNECT answered {first:#x} {body.hex()}"
        elif first != 0x20 or body[1]:
            return f"CONNACK {body[1]:#04x}" if first == 0x20 else f"packet {first:#x} instead of CONNACK"
        whole = all(is_whole(data) for data in case.packets)
        with contextlib.suppress(OSError):  # the broker may close before all is sent
            for data in case.packets:
                await client.send(data)
            if whole:
                await client.send(PINGREQ)
        if not whole:  # the broker waits for the rest: the client's end of file tells it there is none
            with contextlib.suppress(OSError):
                client.writer.write_eof()
            return "cut short: " + await _read_until_end(client, case)
        return await _read_until_end(client, case)


def paho_round_trip(address: tuple[str, int], number: int) -> None:
    """A paho-mqtt MQTTv5 client subscribes, publishes at QoS 1 and receives its message."""
    client = Paho5Client(address, f"check-{number}")
    client.connect()
    try:
        client.subscribe(f"check/{number}", qos=1)
        client.client.publish(f"check/{number}", b"still routing", qos=1)
        message = client.next_message()
        assert (message.topic, message.payload) == (f"check/{number}", b"still routing")
    finally:
        client.close()


def _is_loud(record: logging.LogRecord) -> bool:
    if record.name == "edgemq.mqtt" and UNEXPECTED in str(record.msg):
        return True
    return record.name.startswith(LOUD_LOGGERS) and (record.levelno >= logging.ERROR or bool(record.exc_info))


def loud(records: Sequence[logging.LogRecord]) -> list[str]:
    """The ERROR records, the tracebacks and the unexpected exceptions of a connection's read loop
    among ``records`` (the broker's and its libraries')."""
    return [f"{record.name} {record.levelname}: {record.getMessage()}" for record in records if _is_loud(record)]


async def fuzz_round(broker: EdgeBroker, case: Case, number: int) -> str:
    """Play ``case``, wait until the broker holds no connection, then check a paho round trip;
    how the case ended."""
    try:
        outcome = await send_case(broker.mqtt_address, case)
    except TimeoutError:
        raise AssertionError(f"the broker neither answered nor closed: {case.describe()}") from None
    await wait_until(broker.state, lambda state: state.counts().connections == 0, WAIT)
    await asyncio.to_thread(paho_round_trip, broker.mqtt_address, number)
    await wait_until(broker.state, lambda state: state.counts().connections == 0, WAIT)
    return outcome
