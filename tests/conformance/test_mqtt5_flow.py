"""MQTT 5.0 flow control: Receive Maximum both ways, the client's Maximum Packet Size, and the
reason codes a client puts in its PUBACK and PUBREC (3.3.4, 3.4, 3.5, 4.9).

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import StartTarget, Target
from tests.mqtt5_packets import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, ack, connected, options, props, publish

pytestmark = pytest.mark.anyio

SETTLE = 0.5  # seconds to wait to show that no further PUBLISH comes (an absence needs a bounded wait)


async def publish_all(target: Target, topic: str, count: int, qos: int = 1) -> None:
    """Publish ``count`` messages "0".."count-1" to ``topic``; each is acknowledged before the next."""
    async with connected(target.address, "flow-publisher") as publisher:
        for n in range(count):
            await publisher.send(publish(topic, str(n).encode(), qos=qos, packet_id=n + 1))
            await publisher.expect(PUBACK if qos == 1 else PUBREC)
            if qos == 2:
                await publisher.send(ack(PUBREL, n + 1))
                await publisher.expect(PUBCOMP)


async def test_the_broker_stops_at_the_clients_receive_maximum(target: Target) -> None:
    """MQTT-3.3.4-9: with Receive Maximum 2 a subscriber that acknowledges nothing gets 2 QoS 1 messages, no more."""
    async with connected(target.address, "slow", properties=props(receive_maximum=2)) as slow:
        await slow.subscribe(("rm/t", options(1)))
        await publish_all(target, "rm/t", 4)
        assert [(await slow.expect(PUBLISH)).payload for _ in range(2)] == [b"0", b"1"]
        await slow.nothing_within(SETTLE)


async def test_each_acknowledgement_lets_one_more_message_out(target: Target) -> None:
    """MQTT-3.3.4-9: with Receive Maximum 2 and 2 messages out, one PUBACK lets exactly one more message out."""
    if target.name == "mosquitto":
        pytest.xfail("mosquitto 2.0.11 sends two more messages after one PUBACK: three unacknowledged")
    async with connected(target.address, "slow", properties=props(receive_maximum=2)) as slow:
        await slow.subscribe(("rm/t", options(1)))
        await publish_all(target, "rm/t", 4)
        first, _ = await slow.expect(PUBLISH), await slow.expect(PUBLISH)
        await slow.send(ack(PUBACK, first.packet_id))
        assert (await slow.expect(PUBLISH)).payload == b"2"
        await slow.nothing_within(SETTLE)


async def test_a_client_over_the_brokers_receive_maximum_is_disconnected_with_0x93(start_target: StartTarget) -> None:
    """3.3.4, 4.9: QoS 2 PUBLISHes beyond the broker's Receive Maximum, none released, get DISCONNECT 0x93."""
    async with start_target(receive_maximum=2) as target:
        if target.name == "mosquitto":
            pytest.xfail("mosquitto 2.0.11 answers the extra PUBLISH with PUBREC 0x97 (Quota exceeded), no DISCONNECT")
        async with connected(target.address, "eager") as eager:
            for packet_id in (1, 2, 3):
                await eager.send(publish("eager/t", b"x", qos=2, packet_id=packet_id))
            for packet_id in (1, 2):
                assert (await eager.expect(PUBREC)).packet_id == packet_id
            await eager.refused_with(0x93)


async def test_no_packet_over_the_clients_maximum_packet_size(target: Target) -> None:
    """MQTT-3.1.2-24, -25: a message too large for a client's Maximum Packet Size is dropped for it; others get it."""
    async with (
        connected(target.address, "small", properties=props(maximum_packet_size=128)) as small,
        connected(target.address, "large") as large,
    ):
        await small.subscribe(("size/t", options(1)))
        await large.subscribe(("size/t", options(1)))
        async with connected(target.address, "pub") as pub:
            await pub.publish_acked("size/t", b"x" * 200, packet_id=1)
            await pub.publish_acked("size/t", b"small", packet_id=2)
        assert (await small.expect(PUBLISH)).payload == b"small"
        assert [(await large.expect(PUBLISH)).payload for _ in range(2)] == [b"x" * 200, b"small"]


async def test_a_puback_with_an_error_reason_code_acknowledges_the_message(target: Target) -> None:
    """3.4.2.1, 4.9: a PUBACK with reason code 0x80 and a reason string completes the flow: the next message follows."""
    async with connected(target.address, "refuser", properties=props(receive_maximum=1)) as refuser:
        await refuser.subscribe(("pa/t", options(1)))
        await publish_all(target, "pa/t", 2)
        first = await refuser.expect(PUBLISH)
        await refuser.send(ack(PUBACK, first.packet_id, 0x80, props(reason_string="cannot take it")))
        assert (await refuser.expect(PUBLISH)).payload == b"1"


async def test_a_pubrec_with_an_error_reason_code_ends_the_qos2_flow(target: Target) -> None:
    """4.3.3, 4.9: after a PUBREC with reason code 0x80 the broker sends no PUBREL, and the next message follows."""
    async with connected(target.address, "rejecter", properties=props(receive_maximum=1)) as rejecter:
        await rejecter.subscribe(("pr/t", options(2)))
        await publish_all(target, "pr/t", 2, qos=2)
        first = await rejecter.expect(PUBLISH)
        assert first.qos == 2
        await rejecter.send(ack(PUBREC, first.packet_id, 0x80))
        following = await rejecter.expect(PUBLISH)  # not a PUBREL
        assert following.payload == b"1"


async def test_a_packet_over_the_brokers_maximum_packet_size_gets_0x95(start_target: StartTarget) -> None:
    """3.2.2.3.6, 4.13: a PUBLISH over the broker's Maximum Packet Size gets DISCONNECT 0x95 and a close."""
    async with start_target(max_packet_size=1024) as target, connected(target.address, "oversized") as client:
        await client.send(publish("big/t", b"x" * 2048))
        await client.refused_with(0x95)


async def test_a_qos2_publish_completes_with_v5_acknowledgements(target: Target) -> None:
    """4.3.3, 3.5.2.1, 3.7.2.1: a v5 QoS 2 PUBLISH gets PUBREC 0x00 and PUBCOMP 0x00, and is delivered."""
    async with connected(target.address, "q2-sub") as sub, connected(target.address, "q2-pub") as pub:
        await sub.subscribe(("q2/t", options(2)))
        await pub.send(publish("q2/t", b"exactly once", qos=2, packet_id=5))
        assert ((pubrec := await pub.expect(PUBREC)).packet_id, pubrec.reason) == (5, 0x00)
        await pub.send(ack(PUBREL, 5))
        assert ((pubcomp := await pub.expect(PUBCOMP)).packet_id, pubcomp.reason) == (5, 0x00)
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.qos) == (b"exactly once", 2)
