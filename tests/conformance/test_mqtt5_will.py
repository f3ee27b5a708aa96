"""MQTT 5.0 will messages: the Will Delay Interval, the session end that cuts it short, and
DISCONNECT reason codes that keep or discard the will (3.1.3.2.2, 3.14.2.1, 3.14.4).

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Target
from tests.mqtt5_packets import PUBLISH, Will, connected, disconnect, options, props, publish

pytestmark = pytest.mark.anyio

DELAY = 2  # seconds of Will Delay Interval: brokers keep time in whole seconds, so 1 could pass at once


def will(name: str, delay: int | None = None) -> Will:
    return Will(f"wills/{name}", name.encode(), properties=props(will_delay_interval=delay) if delay else None)


async def test_a_delayed_will_is_published_when_the_delay_ends(target: Target) -> None:
    """MQTT-3.1.2-8 (3.1.3.2.2): after an abrupt disconnect the will waits for its delay, then is published."""
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(
            target.address, "late", will=will("late", DELAY), properties=props(session_expiry_interval=60)
        ) as late:
            late.abort()
        await watcher.nothing_within(DELAY / 2)  # the delay has not passed yet (whole seconds: at least DELAY - 1)
        message = await watcher.expect(PUBLISH, timeout=DELAY + 3)
        assert message.payload == b"late"


async def test_no_will_when_the_client_reconnects_within_the_delay(target: Target) -> None:
    """MQTT-3.1.3-9: a new connection to the session before the Will Delay Interval ends: no will is published."""
    session = props(session_expiry_interval=60)
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "back", will=will("back", DELAY), properties=session) as first:
            first.abort()
        async with connected(target.address, "back", clean_start=False, properties=session) as again:
            await watcher.nothing_within(DELAY + 1.2)  # past the delay, rounded to whole seconds
            await again.send(disconnect())


async def test_a_will_is_published_when_the_session_expires_before_its_delay(target: Target) -> None:
    """MQTT-3.1.2-8 (3.1.3.2.2): a session that expires before the Will Delay Interval publishes the will as it ends."""
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(
            target.address, "expiring", will=will("expiring", 3600), properties=props(session_expiry_interval=1)
        ) as expiring:
            expiring.abort()
        assert (await watcher.expect(PUBLISH)).payload == b"expiring"


async def test_a_will_is_published_at_once_when_the_session_ends_with_the_connection(target: Target) -> None:
    """MQTT-3.1.2-8 (3.1.3.2.2): a session without expiry ends with its connection: the will is published then."""
    if target.name == "mosquitto":
        pytest.xfail("mosquitto 2.0.11 never publishes the delayed will of a session without expiry")
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "short", will=will("short", 3600)) as short:
            short.abort()
        assert (await watcher.expect(PUBLISH)).payload == b"short"


async def test_disconnect_with_will_message_publishes_the_will(target: Target) -> None:
    """3.14.2.1: DISCONNECT with reason code 0x04 (Disconnect with Will Message) publishes the will."""
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "asks", will=will("asks")) as asks:
            await asks.send(disconnect(0x04))
            assert await asks.closed_by_peer()
        assert (await watcher.expect(PUBLISH)).payload == b"asks"


async def test_normal_disconnect_discards_the_will(target: Target) -> None:
    """MQTT-3.14.4-3: DISCONNECT with reason code 0x00 discards the will; a later message arrives alone."""
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "polite", will=will("polite")) as polite:
            await polite.send(disconnect(0x00))
            assert await polite.closed_by_peer()
        await watcher.send(publish("wills/marker", b"marker"))
        assert (await watcher.expect(PUBLISH)).payload == b"marker"


async def test_the_will_carries_its_properties(target: Target) -> None:
    """3.1.3.2: the will is published with its content type, response topic and user properties."""
    rich_will = Will(
        "wills/rich", b"rich", properties=props([("k", "v")], content_type="text/plain", response_topic="wills/reply")
    )
    async with connected(target.address, "watcher") as watcher:
        await watcher.subscribe(("wills/#", options(0)))
        async with connected(target.address, "rich", will=rich_will) as rich:
            rich.abort()
        message = await watcher.expect(PUBLISH)
    assert message.properties.user_properties == [("k", "v")]
    assert (message.properties.get("content_type"), message.properties.get("response_topic")) == (
        "text/plain",
        "wills/reply",
    )
