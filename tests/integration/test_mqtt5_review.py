"""Review of the MQTT 5 change: each test shows a defect found in review (xfail, strict, until fixed)."""

from __future__ import annotations

import asyncio

import pytest

from broker.testing.clock import ManualClock
from tests.helpers import mqtt_client, next_message, running_broker, wait_state
from tests.mqtt5_packets import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    V5Client,
    Will,
    ack,
    connected,
    disconnect,
    options,
    props,
    publish,
)

pytestmark = pytest.mark.anyio

KEPT = 300  # a Session Expiry Interval that keeps the session across a reconnect


async def _publish_qos2(pub: V5Client, topic: str, payload: bytes, packet_id: int) -> None:
    """Publish at QoS 2 and finish the exchange (PUBREC, PUBREL, PUBCOMP)."""
    await pub.send(publish(topic, payload, qos=2, packet_id=packet_id))
    assert (await pub.expect(PUBREC)).packet_id == packet_id
    await pub.send(ack(PUBREL, packet_id))
    assert (await pub.expect(PUBCOMP)).packet_id == packet_id


async def _publishes_until_quiet(client: V5Client, quiet: float = 0.5) -> list[bytes]:
    """The payloads ``client`` receives (each acknowledged) until ``quiet`` seconds pass without a packet."""
    payloads: list[bytes] = []
    while True:
        try:
            received = await client.next(timeout=quiet)
        except TimeoutError:
            return payloads
        if received.kind == PUBLISH:
            payloads.append(received.payload)
            await client.send(ack(PUBACK, received.packet_id))


async def test_receive_maximum_holds_after_a_pubrel_is_resent_on_reconnect() -> None:
    """MQTT-3.3.4-9, 4.9: after a resent PUBREL's PUBCOMP, at most Receive Maximum (1) PUBLISHes are unacknowledged."""
    terms = props(session_expiry_interval=KEPT, receive_maximum=1)
    async with running_broker() as broker, connected(broker.mqtt_address, "pub") as pub:
        async with connected(broker.mqtt_address, "slow", properties=terms) as sub:
            await sub.subscribe(("rm/#", options(2)))
            await _publish_qos2(pub, "rm/first", b"first", 1)
            first = await sub.expect(PUBLISH)
            await sub.send(ack(PUBREC, first.packet_id))
            assert (await sub.expect(PUBREL)).packet_id == first.packet_id
            sub.abort()  # no PUBCOMP: the PUBREL is resent on the next connection
        await wait_state(broker, lambda state: state.counts().connections == 1)
        async with connected(broker.mqtt_address, "slow", clean_start=False, properties=terms) as sub:
            assert (await sub.expect(PUBREL)).packet_id == first.packet_id
            await sub.send(ack(PUBCOMP, first.packet_id))
            await _publish_qos2(pub, "rm/a", b"a", 2)
            await _publish_qos2(pub, "rm/b", b"b", 3)
            assert (await sub.expect(PUBLISH)).payload == b"a"
            await sub.nothing_within(0.5)  # "b" waits until "a" is acknowledged


async def test_a_delayed_will_is_published_when_a_clean_start_ends_its_session() -> None:
    """3.1.2.5, 3.1.3.2.2: a pending delayed will is published when a Clean Start connection ends its session."""
    clock = ManualClock()  # never advanced: only the session's end may publish the will
    will = Will("wills/clean", b"gone", properties=props(will_delay_interval=30))
    expiry = props(session_expiry_interval=KEPT)
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with connected(broker.mqtt_address, "fresh", will=will, properties=expiry) as client:
            client.abort()
        await wait_state(broker, lambda state: state.counts().connections == 1)
        async with connected(broker.mqtt_address, "fresh", clean_start=True, properties=expiry) as again:
            assert again is not None
            assert (await next_message(watcher)).payload == b"gone"


async def test_retain_as_published_holds_for_a_copy_queued_while_offline() -> None:
    """MQTT-3.3.1-13: a retained message queued for an offline Retain-As-Published subscriber arrives with RETAIN 1."""
    expiry = props(session_expiry_interval=KEPT)
    async with running_broker() as broker:
        async with connected(broker.mqtt_address, "rap", properties=expiry) as sub:
            await sub.subscribe(("rap/#", options(1, retain_as_published=True)))
            await sub.send(b"\xe0\x00")
        await wait_state(broker, lambda state: state.counts().connections == 0)
        async with connected(broker.mqtt_address, "pub") as pub:
            await pub.publish_acked("rap/t", b"kept", retain=True)
        async with connected(broker.mqtt_address, "rap", clean_start=False, properties=expiry) as sub:
            message = await sub.expect(PUBLISH)
            await sub.send(ack(PUBACK, message.packet_id))
            assert (message.payload, message.retain) == (b"kept", True)


async def test_an_expired_retained_message_is_counted_as_dropped() -> None:
    """README 'MQTT 5.0': a retained copy past its Message Expiry Interval is dropped and counted in message_drop."""
    async with running_broker() as broker:
        async with connected(broker.mqtt_address, "pub") as pub:
            await pub.publish_acked("old/t", b"stale", retain=True, properties=props(message_expiry_interval=1))
        dropped = broker.state.stats().message_drop
        await asyncio.sleep(1.1)  # the message's one second must pass (expiry runs on wall time)
        async with connected(broker.mqtt_address, "late") as late:
            await late.subscribe(("old/#", options(1)))
            await late.nothing_within(0.3)
        assert broker.state.stats().message_drop == dropped + 1


async def test_a_delayed_will_is_published_when_a_clean_kick_ends_its_session() -> None:
    """3.1.2.5: a will whose delay outlasts its session is published when the session ends (a clean kick)."""
    clock = ManualClock()  # never advanced: only the session's end may publish the will
    will = Will("wills/kicked", b"gone", properties=props(will_delay_interval=30))
    expiry = props(session_expiry_interval=KEPT)
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with connected(broker.mqtt_address, "kicked", will=will, properties=expiry):
            assert await broker.kick("kicked", clean=True)
            await wait_state(broker, lambda state: state.stats().client_size == 1)  # the watcher's alone
            assert (await next_message(watcher)).payload == b"gone"


async def test_discarding_an_offline_session_cancels_its_expiry_timer() -> None:
    """A v5 session discarded by a clean kick leaves no expiry timer behind."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker:
        async with connected(broker.mqtt_address, "gone", properties=props(session_expiry_interval=3600)) as client:
            await client.send(b"\xe0\x00")
        await wait_state(broker, lambda state: state.counts().connections == 0)
        assert clock.pending == 1  # the session's expiry
        assert await broker.kick("gone", clean=True)
        assert clock.pending == 0


async def test_a_disconnect_with_an_error_reason_publishes_the_will() -> None:
    """MQTT-3.1.2-10, 3.1.2.5: a client closing with DISCONNECT 0x80 (not 0x00) has its will published."""
    will = Will("wills/error", b"gone")
    async with running_broker() as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with connected(broker.mqtt_address, "failing", will=will) as client:
            await client.send(disconnect(0x80))
            assert await client.closed_by_peer()
        assert (await next_message(watcher)).payload == b"gone"


async def test_no_local_holds_when_the_publisher_is_also_a_shared_member() -> None:
    """MQTT-3.8.3-3: a No Local subscriber that is also in a share group gets its own message only on its group turn."""
    async with (
        running_broker() as broker,
        connected(broker.mqtt_address, "self") as me,
        connected(broker.mqtt_address, "other") as other,
    ):
        await me.subscribe(("nl/#", options(1, no_local=True)), ("$share/g/nl/#", options(1)))
        await other.subscribe(("$share/g/nl/#", options(1)))
        for n in (1, 2):  # one turn each for the group's two members
            await me.send(publish("nl/t", str(n).encode(), qos=1, packet_id=n))
        own = await _publishes_until_quiet(me)
        theirs = await _publishes_until_quiet(other)
        assert len(theirs) == 1  # the other member's turn
        assert len(own) == 1  # its own turn only: not the other member's turn through "nl/#"
