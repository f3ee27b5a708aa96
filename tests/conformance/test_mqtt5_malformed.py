"""MQTT 5.0 malformed input: bad property blocks and forbidden subscription options are refused with
DISCONNECT 0x81 (Malformed Packet) or 0x82 (Protocol Error) and a close; a bad CONNECT is closed
(2.2.2.2, 3.1.4, 4.13).

Where the standard leaves the choice between 0x81 and 0x82 to the broker, both are accepted; a
DISCONNECT before the close is required (4.13.1: the broker SHOULD send it), and mosquitto, which
closes some of these without one, is marked.

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.conformance.conftest import Target
from tests.mqtt5_packets import (
    CONNACK,
    PUBACK,
    PUBLISH,
    V5Client,
    Will,
    ack,
    connect,
    connected,
    options,
    publish,
    subscribe,
    unsubscribe,
)

pytestmark = pytest.mark.anyio

MALFORMED, PROTOCOL_ERROR, TOPIC_ALIAS_INVALID = 0x81, 0x82, 0x94
EITHER = (MALFORMED, PROTOCOL_ERROR)


class Case(NamedTuple):
    packet: bytes
    codes: tuple[int, ...]
    mosquitto: str | None = None  # why mosquitto 2.0.11 fails the case, if it does


CLOSES_SILENTLY = "mosquitto 2.0.11 closes the connection without a DISCONNECT"

CASES = {
    "duplicated property": Case(publish("m/t", b"x", properties=bytes([4, 0x01, 0, 0x01, 1])), EITHER, CLOSES_SILENTLY),
    "unknown property identifier": Case(publish("m/t", b"x", properties=bytes([2, 0x7F, 0])), EITHER),
    "property not allowed in PUBLISH": Case(publish("m/t", b"x", properties=bytes([5, 0x11, 0, 0, 0, 1])), EITHER),
    "property block past the packet": Case(publish("m/t", b"", properties=bytes([10, 0x01, 1])), EITHER),
    "user property not UTF-8": Case(
        publish("m/t", b"x", properties=bytes([7, 0x26, 0, 1, 0xFF, 0, 1, 0x41])), EITHER, CLOSES_SILENTLY
    ),
    "topic alias 0": Case(publish("m/t", b"x", properties=bytes([3, 0x23, 0, 0])), (*EITHER, TOPIC_ALIAS_INVALID)),
    "property not allowed in PUBACK": Case(ack(PUBACK, 1, 0, bytes([2, 0x01, 1])), EITHER, CLOSES_SILENTLY),
    "property not allowed in UNSUBSCRIBE": Case(unsubscribe(1, "m/t", properties=bytes([2, 0x01, 1])), EITHER),
    "subscription identifier 0": Case(subscribe(1, ("m/t", 0), properties=bytes([2, 0x0B, 0])), EITHER),
    "two subscription identifiers": Case(
        subscribe(1, ("m/t", 0), properties=bytes([4, 0x0B, 1, 0x0B, 2])), EITHER, CLOSES_SILENTLY
    ),
    "reserved subscription option bits": Case(subscribe(1, ("m/t", 0xC0)), EITHER),
    "retain handling 3": Case(subscribe(1, ("m/t", options(0, retain_handling=3))), EITHER),
    "no local on a shared subscription": Case(
        subscribe(1, ("$share/g/m/t", options(0, no_local=True))),
        EITHER,
        "mosquitto 2.0.11 accepts No Local on a shared subscription (MQTT-3.8.3-4)",
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_malformed_packet_gets_disconnect_and_close(target: Target, case: str) -> None:
    """2.2.2.2, MQTT-3.8.3-4, -5, 4.13: the broker sends DISCONNECT 0x81 or 0x82 (0x94 for alias 0) and closes."""
    packet, codes, mosquitto = CASES[case]
    if target.name == "mosquitto" and mosquitto:
        pytest.xfail(mosquitto)
    async with connected(target.address, f"bad-{case.replace(' ', '-')}") as client:
        await client.send(packet)
        await client.refused_with(*codes)


CONNECTS = {
    "duplicated property": bytes([10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]),
    "receive maximum 0": bytes([3, 0x21, 0, 0]),
    "unknown property identifier": bytes([2, 0x7F, 0]),
    "property not allowed in CONNECT": bytes([2, 0x01, 1]),
}


@pytest.mark.parametrize("case", CONNECTS)
async def test_malformed_connect_is_closed(target: Target, case: str) -> None:
    """MQTT-3.1.4-1, -2: a CONNECT with a bad property block is closed, after a CONNACK 0x81 or 0x82 at most."""
    async with V5Client.open(target.address) as client:
        await client.send(connect("bad-connect", properties=CONNECTS[case]))
        try:
            answer = await client.next()
        except (EOFError, ConnectionResetError):  # closed without a CONNACK
            return
        assert (answer.kind, answer.reason in EITHER) == (CONNACK, True), answer.describe()
        assert await client.closed_by_peer()


async def test_a_malformed_packet_closes_only_that_connection(target: Target) -> None:
    """4.13: the broker carries on for other clients after refusing one connection's malformed packet."""
    async with connected(target.address, "bystander") as bystander:
        await bystander.subscribe(("still/alive", options(0)))
        async with connected(target.address, "bad") as bad:
            await bad.send(CASES["unknown property identifier"].packet)
            await bad.refused_with(*EITHER)
        await bystander.send(publish("still/alive", b"yes"))
        assert (await bystander.expect(PUBLISH)).payload == b"yes"


async def test_the_will_is_published_after_a_malformed_packet(target: Target) -> None:
    """MQTT-3.1.2-8, 4.13: a connection closed for a malformed packet publishes its will."""
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "faulty", will=Will("wills/faulty", b"faulty")) as faulty:
            await faulty.send(CASES["unknown property identifier"].packet)
            await faulty.refused_with(*EITHER)
        assert (await watcher.expect(PUBLISH)).payload == b"faulty"
