"""Keep-alive and the CONNECT deadline follow the broker's clock: driven by hand, no waiting."""

from __future__ import annotations

import pytest

from broker.mqtt.encoding import PINGREQ, encode_connect
from broker.testing.clock import ManualClock
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

PINGRESP = 0xD0


async def ping(client: RawClient) -> None:
    """A PINGREQ answered: the connection is open and its keep-alive timer is armed."""
    await client.send(PINGREQ)
    first, _ = await client.read_packet(WAIT)
    assert first == PINGRESP


async def test_silence_past_the_keep_alive_allowance_closes_and_publishes_the_will() -> None:
    """3.1.2.10: 1.5 x keep-alive without a packet closes the connection and publishes the will."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker, mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("wills/#")
        async with RawClient.open(broker.mqtt_address) as silent:
            will = ("wills/silent", b"gone", 0, False)
            assert await silent.connack(encode_connect("silent", keep_alive=10, will=will)) == (0, 0)
            await ping(silent)
            clock.advance(14.9)
            await ping(silent)  # within the allowance: still open
            clock.advance(15.0)
            assert await silent.closed_by_peer(WAIT)
        assert (await next_message(watcher)).payload == b"gone"


async def test_every_packet_restarts_the_keep_alive_allowance() -> None:
    """A client that sends a packet within each allowance stays connected however long it lives."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker, RawClient.open(broker.mqtt_address) as client:
        assert await client.connack(encode_connect("talker", keep_alive=10)) == (0, 0)
        for _ in range(5):
            await ping(client)
            clock.advance(14.0)  # 70 s in all, each gap under the 15 s allowance
        await ping(client)
        assert broker.state.client("talker") is not None
        assert broker.state.counts().connections == 1


async def test_keep_alive_zero_never_expires() -> None:
    """A client with keep-alive 0 is never closed for silence (3.1.2.10)."""
    clock = ManualClock()
    async with running_broker(clock=clock) as broker, RawClient.open(broker.mqtt_address) as client:
        assert await client.connack(encode_connect("forever", keep_alive=0)) == (0, 0)
        await ping(client)
        clock.advance(86_400.0)
        await ping(client)


async def test_no_connect_within_connect_timeout_closes_the_connection() -> None:
    """A connection that sends no CONNECT is closed once mqtt.connect_timeout has passed on the clock."""
    clock = ManualClock()
    settings = ephemeral_settings(mqtt={"connect_timeout": 30.0})
    async with running_broker(settings, clock=clock) as broker, RawClient.open(broker.mqtt_address) as idle:
        await clock.wait_pending(1, WAIT)  # the deadline is armed
        clock.advance(29.0)
        assert clock.pending == 1
        clock.advance(1.0)
        assert await idle.closed_by_peer(WAIT)
