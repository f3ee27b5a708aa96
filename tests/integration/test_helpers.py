"""The embedding helpers: capture, waits and their timeout messages, reset, run_in_thread."""

from __future__ import annotations

import re
import threading

import pytest

from broker import EdgeBroker
from broker.testing.helpers import wait_until
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker

pytestmark = pytest.mark.anyio


async def test_capture_records_matching_messages_until_stopped(broker: EdgeBroker) -> None:
    """A capture records the messages on matching topics, in order, until it is stopped."""
    with broker.capture("a/#") as capture:
        async with mqtt_client(broker, "pub") as pub:
            for topic, payload in [("a/1", b"1"), ("b/1", b"x"), ("a/2/3", b"2")]:
                await pub.publish(topic, payload)
            await wait_until(broker.state, lambda s: s.stats().message_in == 3, 5)
    async with mqtt_client(broker, "pub") as pub:
        await pub.publish("a/late", b"late")
        await wait_until(broker.state, lambda s: s.stats().message_in == 4, 5)
    assert capture.payloads == [b"1", b"2"]
    assert [m.sender for m in capture.messages] == ["pub", "pub"]


async def test_wait_for_message_finds_earlier_messages() -> None:
    """With a history, wait_for_message returns a message published before the wait began."""
    async with running_broker(history=100) as broker, mqtt_client(broker, "pub") as pub:
        await pub.publish("early/bird", b"first", qos=1)
        message = await broker.wait_for_message("early/+")
    assert (message.topic, message.payload, message.qos) == ("early/bird", b"first", 1)


async def test_wait_for_message_timeout_names_what_it_saw() -> None:
    """A wait_for_message timeout names the filter and the topics that did arrive."""
    async with running_broker(history=100) as broker, mqtt_client(broker, "pub") as pub:
        await pub.publish("other/topic", b"x", qos=1)
        with pytest.raises(
            TimeoutError, match=re.escape("no message on 'wanted/#' within 0.05s; topics seen: ['other/topic']")
        ):
            await broker.wait_for_message("wanted/#", timeout=0.05)


async def test_wait_for_message_needs_history(broker: EdgeBroker) -> None:
    """Without a history wait_for_message says how to turn it on."""
    with pytest.raises(RuntimeError, match="history=N"):
        await broker.wait_for_message("t")


async def test_wait_for_client_timeout_names_connected_clients(broker: EdgeBroker) -> None:
    """A wait_for_client timeout names the client and those that are connected."""
    async with mqtt_client(broker, "present"):
        await broker.wait_for_client("present")
        with pytest.raises(
            TimeoutError, match=re.escape("client 'absent' did not connect within 0.05s; connected: ['present']")
        ):
            await broker.wait_for_client("absent", timeout=0.05)


async def test_wait_for_subscription(broker: EdgeBroker) -> None:
    """wait_for_subscription returns the holder, and its timeout lists the subscriptions seen."""
    async with mqtt_client(broker, "s") as s:
        await s.subscribe("have/this")
        assert await broker.wait_for_subscription("have/this") == "s"
        with pytest.raises(
            TimeoutError,
            match=re.escape("no subscription to 'not/this' by 's' within 0.05s; subscriptions: {'s': ['have/this']}"),
        ):
            await broker.wait_for_subscription("not/this", "s", timeout=0.05)


async def test_reset_forgets_everything(broker: EdgeBroker) -> None:
    """reset() closes clients and drops sessions, subscriptions, retained messages and counters."""
    async with mqtt_client(broker, "keeper", clean_session=False) as keeper:
        await keeper.subscribe("k", qos=1)
        await keeper.publish("r", b"retained", retain=True, qos=1)
        await wait_until(broker.state, lambda s: s.stats().message_in == 1, 5)
        await broker.reset()
        assert broker.stats().message_in == 0
        assert broker.state.clients() == []
        assert broker.state.subscriptions() == []
    async with mqtt_client(broker, "fresh") as fresh:
        await fresh.subscribe("#")
        await fresh.publish("marker", b"m")
        assert (await next_message(fresh)).payload == b"m"  # no retained message came first


def test_run_in_thread_starts_and_stops_cleanly() -> None:
    """run_in_thread serves on its own thread and joins it on exit."""
    before = set(threading.enumerate())
    with EdgeBroker.run_in_thread(ephemeral_settings()) as broker:
        assert broker.mqtt_url.startswith("mqtt://127.0.0.1:")
        assert broker.stats().message_in == 0
    assert set(threading.enumerate()) - before == set()


def test_run_in_thread_start_failure_raises_in_caller() -> None:
    """A broker that cannot start raises in the caller and leaves no thread behind."""
    before = set(threading.enumerate())
    with EdgeBroker.run_in_thread(ephemeral_settings()) as first:
        taken = ephemeral_settings(listeners={"tcp": {"bind": f"127.0.0.1:{first.mqtt_port}"}})
        with pytest.raises(OSError, match="address already in use"), EdgeBroker.run_in_thread(taken):
            pass
    assert set(threading.enumerate()) - before == set()
