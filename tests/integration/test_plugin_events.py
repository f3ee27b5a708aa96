"""amqtt plugin events from the ``plugins`` section: fired once the state changed, with amqtt's
arguments, on every path (MQTT, HTTP publish, wills, kicks, restarts); a failing plugin is
logged once and never breaks routing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import pytest

from broker import EdgeBroker
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker
from tests.plugin_examples import HangingEventPlugin, RecordingPlugin

pytestmark = pytest.mark.anyio

RECORDER = "tests.plugin_examples.RecordingPlugin"


async def round_trip_three(client: aiomqtt.Client) -> None:
    """Subscribe to t/#, publish t/0..t/2 and receive them back, in order."""
    await client.subscribe("t/#")
    for n in range(3):
        await client.publish(f"t/{n}", b"x")
    assert [str((await next_message(client)).topic) for _ in range(3)] == ["t/0", "t/1", "t/2"]


@pytest.fixture
async def recorded(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EdgeBroker, RecordingPlugin]]:
    """A broker with the recording plugin loaded, and that plugin."""
    key = request.node.name
    async with running_broker(ephemeral_settings(plugins={RECORDER: {"key": key}})) as broker:
        yield broker, RecordingPlugin.instances.pop(key)


async def test_an_mqtt_client_session_fires_each_event_in_order(
    recorded: tuple[EdgeBroker, RecordingPlugin],
) -> None:
    """connected, subscribed, received, broadcast, retained, unsubscribed, disconnected: in that
    order and with amqtt's arguments."""
    broker, plugin = recorded
    async with mqtt_client(broker, "alice", username="alice") as client:
        await client.subscribe("room/#", qos=1)
        await client.publish("room/1", b"hi", qos=1, retain=True)
        await next_message(client)
        await client.unsubscribe("room/#")
    await plugin.wait_for("broker_client_disconnected")
    assert [e for e in plugin.events if e[0] not in ("broker_pre_start", "broker_post_start")] == [
        ("broker_client_connected", {"client_id": "alice", "username": "alice"}),
        ("broker_client_subscribed", {"client_id": "alice", "topic": "room/#", "qos": 1}),
        ("broker_message_received", {"client_id": "alice", "topic": "room/1", "data": b"hi"}),
        ("broker_message_broadcast", {"client_id": "alice", "topic": "room/1", "data": b"hi"}),
        ("broker_retained_message", {"client_id": None, "topic": "room/1", "data": b"hi"}),
        ("broker_client_unsubscribed", {"client_id": "alice", "topic": "room/#"}),
        ("broker_client_disconnected", {"client_id": "alice"}),
    ]


async def test_start_and_shutdown_events_fire_around_the_broker() -> None:
    """pre/post start are recorded by the time the broker is up, pre/post shutdown once it stopped."""
    async with running_broker(ephemeral_settings(plugins={RECORDER: {"key": "lifecycle"}})):
        plugin = RecordingPlugin.instances.pop("lifecycle")
        assert plugin.names() == ["broker_pre_start", "broker_post_start"]
    assert plugin.names()[-2:] == ["broker_pre_shutdown", "broker_post_shutdown"]


async def test_http_publish_fires_received_and_broadcast(recorded: tuple[EdgeBroker, RecordingPlugin]) -> None:
    """A message published over the admin API reaches the plugins like a client's (no client id)."""
    broker, plugin = recorded
    async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public")) as api:
        response = await api.post("/v4/mqtt/publish", json={"topic": "api/t", "payload": "x", "qos": 0})
    assert response.json()["code"] == 0
    await plugin.wait_for("broker_message_broadcast")
    received = [e for e in plugin.events if e[0] in ("broker_message_received", "broker_message_broadcast")]
    assert [(name, args["client_id"], args["topic"]) for name, args in received] == [
        ("broker_message_received", None, "api/t"),
        ("broker_message_broadcast", None, "api/t"),
    ]


async def test_a_kicked_client_fires_its_will_then_disconnected(recorded: tuple[EdgeBroker, RecordingPlugin]) -> None:
    """A kick fires the will's broadcast (as its client's message) and then disconnected."""
    broker, plugin = recorded
    async with mqtt_client(broker, "bob", will=aiomqtt.Will("wills/bob", b"gone")):
        await plugin.wait_for("broker_client_connected")
        assert await broker.kick("bob")
        await plugin.wait_for("broker_client_disconnected")
    names = plugin.names()
    assert names.index("broker_message_broadcast") < names.index("broker_client_disconnected")
    broadcast = next(args for name, args in plugin.events if name == "broker_message_broadcast")
    assert broadcast == {"client_id": "bob", "topic": "wills/bob", "data": b"gone"}


async def test_a_restart_fires_disconnected_for_each_client(recorded: tuple[EdgeBroker, RecordingPlugin]) -> None:
    """A restart (v1 req 10) ends every connection: one disconnected event per client."""
    broker, plugin = recorded
    async with mqtt_client(broker, "c1"), mqtt_client(broker, "c2"):
        await plugin.wait_for("broker_client_connected", count=2)
        await broker.restart()
        await plugin.wait_for("broker_client_disconnected", count=2)
    disconnected = sorted(args["client_id"] for name, args in plugin.events if name == "broker_client_disconnected")
    assert disconnected[:2] == ["c1", "c2"]


async def test_a_message_queued_for_an_offline_session_fires_the_retained_event(
    recorded: tuple[EdgeBroker, RecordingPlugin],
) -> None:
    """amqtt's retained event with a client id: a copy queued for that offline persistent session."""
    broker, plugin = recorded
    async with mqtt_client(broker, "away", clean_session=False) as client:
        await client.subscribe("q/#", qos=1)
    await plugin.wait_for("broker_client_disconnected")
    await broker.publish("q/1", b"later", qos=1)
    await plugin.wait_for("broker_retained_message")
    queued = [args for name, args in plugin.events if name == "broker_retained_message"]
    assert queued == [{"client_id": "away", "topic": "q/1", "data": b"later"}]


async def test_a_failing_plugin_is_logged_once_and_routing_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A plugin raising on every message: one ERROR naming it, and every message still delivered."""
    settings = ephemeral_settings(plugins={"tests.plugin_examples.FailingEventPlugin": {}})
    with caplog.at_level(logging.ERROR, logger="edgemq.plugins"):
        async with running_broker(settings) as broker, mqtt_client(broker, "sub") as client:
            await round_trip_three(client)  # each event's task was scheduled before its message was routed
    failures = [r for r in caplog.records if "FailingEventPlugin" in r.getMessage()]
    assert len(failures) == 1
    assert "broker_message_received" in failures[0].getMessage()
    assert failures[0].exc_info is not None


async def test_a_hanging_handler_is_cancelled_and_the_shutdown_completes(caplog: pytest.LogCaptureFixture) -> None:
    """A handler that never ends is cancelled after auth.plugin_timeout (one ERROR); the broker
    stops in time and the plugin's close() runs."""
    HangingEventPlugin.closed = False
    settings = ephemeral_settings(
        auth={"plugin_timeout": 0.2}, plugins={"tests.plugin_examples.HangingEventPlugin": {}}, shutdown_timeout=5.0
    )
    with caplog.at_level(logging.ERROR, logger="edgemq.plugins"):
        async with running_broker(settings) as broker, mqtt_client(broker, "sub") as client:
            await round_trip_three(client)
    assert HangingEventPlugin.closed
    assert [r.getMessage() for r in caplog.records if "HangingEventPlugin" in r.getMessage()] == [
        "plugin HangingEventPlugin on broker_message_received did not finish within 0.2s: cancelled"
        " (not logged again for it)"
    ]
