"""Delayed copies at the edges of a delay fault, seen by real clients: a connection that ends
while copies wait, an undo with later copies behind, and the broker's reset and stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from broker import EdgeBroker
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.integration.fault_checks import assert_healthy, assert_nothing_was_left_for, broker_tasks

pytestmark = pytest.mark.anyio

HELD = 3600  # seconds: longer than any test runs, so only the fault's end or the connection's lets a copy go


async def test_persistent_session_gets_its_held_copy_on_the_next_connection(broker: EdgeBroker) -> None:
    """A QoS 1 copy held when the connection drops goes out on the connection that resumes the session."""
    before = broker_tasks()
    async with mqtt_client(broker, "d", clean_session=False) as first:
        await first.subscribe("t", qos=1)
        scope = broker.faults.delay_deliveries(HELD, client_id="d")
        await broker.publish("t", b"held", qos=1)
        assert broker.faults.drop_connection("d")
        with pytest.raises(aiomqtt.MqttError):
            await next_message(first)
    async with mqtt_client(broker, "d", clean_session=False) as second:
        assert (await next_message(second)).payload == b"held"  # the fault is still in force
        scope.undo()
        await assert_healthy(broker, before)
    assert broker.stats().message_drop == 0


async def test_held_copies_keep_their_order_on_the_next_connection(broker: EdgeBroker) -> None:
    """Copies held when the connection drops come on the next one in the order they were routed,
    before those queued while the session was offline."""
    async with mqtt_client(broker, "d", clean_session=False) as first:
        await first.subscribe("t", qos=1)
        scope = broker.faults.delay_deliveries(HELD, client_id="d")
        for n in range(3):
            await broker.publish("t", b"%d" % n, qos=1)
        assert broker.faults.drop_connection("d")
        with pytest.raises(aiomqtt.MqttError):
            await next_message(first)
    await wait_state(broker, lambda state: not state.client("d").connected)  # type: ignore[union-attr]
    await broker.publish("t", b"offline", qos=1)
    async with mqtt_client(broker, "d", clean_session=False) as second:
        assert [(await next_message(second)).payload for _ in range(4)] == [b"0", b"1", b"2", b"offline"]
    scope.undo()


async def test_clean_session_held_copy_is_dropped_once_with_its_connection(broker: EdgeBroker) -> None:
    """A copy held when a clean session's connection drops is counted as dropped once, at once,
    and the fault's waiting ends with the connection."""
    before = broker_tasks()
    async with mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("t", qos=1)
        async with mqtt_client(broker, "app") as app:
            await app.subscribe("t", qos=1)
            with broker.faults.delay_deliveries(HELD, client_id="app"):
                await broker.publish("t", b"held", qos=1)
                assert (await next_message(watcher)).payload == b"held"
                assert broker.faults.drop_connection("app")
                with pytest.raises(aiomqtt.MqttError):
                    await next_message(app)
                await assert_nothing_was_left_for(broker, "app", drops=1)
        await assert_healthy(broker, before)


async def test_copies_routed_after_the_undo_come_after_the_released_ones(broker: EdgeBroker) -> None:
    """Undoing a delay releases the held copies first: a copy routed just after the undo follows them."""
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("t", qos=1)
        scope = broker.faults.delay_deliveries(HELD, client_id="app")
        for n in range(2):
            await broker.publish("t", b"%d" % n, qos=1)
        scope.undo()
        await broker.publish("t", b"after", qos=1)
        assert [(await next_message(app)).payload for _ in range(3)] == [b"0", b"1", b"after"]


async def test_reset_drops_held_copies_without_counting_them(broker: EdgeBroker) -> None:
    """reset() ends the faults and the copies they hold: nothing is counted after it."""
    before = broker_tasks()
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("t", qos=1)
        broker.faults.delay_deliveries(HELD, client_id="app")
        for n in range(28):
            await broker.publish("t", b"%d" % n, qos=1)
        await broker.reset()
        assert broker.stats().message_drop == 0
        await assert_healthy(broker, before)  # every task the fault started has ended
    assert broker.stats().message_drop == 0


async def test_stop_clears_the_faults_and_ends_their_waiting() -> None:
    """stop() clears every fault and ends the waiting of the copies a delay holds."""
    async with running_broker() as broker:
        before = broker_tasks()
        async with mqtt_client(broker, "app") as app:
            await app.subscribe("t", qos=1)
            broker.faults.delay_deliveries(HELD, client_id="app")
            broker.faults.withhold_acks("app")
            await broker.publish("t", b"held", qos=1)
            await broker.stop()
            assert broker.faults.active_faults == []
            assert not broker.faults.active
            started = broker_tasks() - before
            if started:
                _, pending = await asyncio.wait(started, timeout=WAIT)
                assert not pending, pending
        await broker.start()  # running_broker's exit stops it again and checks for leftover tasks


async def test_stop_leaves_a_persistent_sessions_held_copy_in_the_store(tmp_path: Path) -> None:
    """A QoS 1 copy held for a persistent session when the broker stops is sent after the start."""
    settings = ephemeral_settings(persistence={"enable": True, "path": str(tmp_path / "edgemq.db")})
    async with running_broker(settings) as broker:
        async with mqtt_client(broker, "d", clean_session=False) as first:
            await first.subscribe("t", qos=1)
            broker.faults.delay_deliveries(HELD, client_id="d")
            await broker.publish("t", b"held", qos=1)
            await broker.stop()
            with pytest.raises(aiomqtt.MqttError):
                await next_message(first)
        await broker.start()
        assert broker.faults.active_faults == []
        async with mqtt_client(broker, "d", clean_session=False) as second:
            assert (await next_message(second)).payload == b"held"
