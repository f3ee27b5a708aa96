"""Faults on connections, seen by real clients: refused connects, restart and stop/start on the
same port, dropped and black-holed connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import aiomqtt
import httpx
import pydantic
import pytest

from broker import BrokerSettings, EdgeBroker
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.integration.fault_checks import assert_healthy, broker_tasks
from tests.integration.paho_client import PahoClient

pytestmark = pytest.mark.anyio


async def test_refused_connects_get_the_chosen_connack_code(broker: EdgeBroker) -> None:
    """The next N connects get CONNACK with the chosen code; the one after is accepted."""
    before = broker_tasks()
    with broker.faults.refuse_connects(2, code=5) as scope:
        for _ in range(2):
            with pytest.raises(aiomqtt.MqttCodeError) as refused:
                async with mqtt_client(broker, "app"):
                    pass
            assert str(refused.value.rc) == "Not authorized"  # CONNACK 5
        assert not scope.is_active  # used up: it cleared itself
        async with mqtt_client(broker, "app"):
            await broker.wait_for_client("app")
    await assert_healthy(broker, before)


async def test_refused_connect_can_close_the_socket_without_a_connack(broker: EdgeBroker) -> None:
    """With code=None the socket closes before any CONNACK: the client sees a lost connection."""
    before = broker_tasks()
    with broker.faults.refuse_connects(1, code=None):
        with pytest.raises(aiomqtt.MqttError) as refused:
            async with mqtt_client(broker, "app"):
                pass
        assert not isinstance(refused.value, aiomqtt.MqttCodeError)
    await assert_healthy(broker, before)


async def test_paho_reconnects_after_refused_connects(broker: EdgeBroker) -> None:
    """paho's automatic reconnect gets the two refusals (server unavailable), then is accepted."""
    client = PahoClient(broker.mqtt_address, "paho-app")
    with broker.faults.refuse_connects(2, code=3):
        await asyncio.to_thread(client.start)
        codes = [await asyncio.to_thread(client.next, client.connacks) for _ in range(3)]
    try:
        assert codes == ["Server unavailable", "Server unavailable", "Success"]  # CONNACK 3, 3, 0
    finally:
        await asyncio.to_thread(client.close)


async def test_restart_keeps_the_port_the_sessions_and_retained_messages(broker: EdgeBroker) -> None:
    """restart(): connections drop, the port stays, a persistent session gets what was queued."""
    port = broker.mqtt_port
    async with mqtt_client(broker, "durable", clean_session=False) as durable:
        await durable.subscribe("orders/#", qos=1)
        await broker.restart()
        with pytest.raises(aiomqtt.MqttError):
            await next_message(durable)  # the restart ended its connection
    await broker.publish("orders/1", b"queued", qos=1)
    await broker.publish("status", b"up", qos=1, retain=True)
    assert broker.mqtt_port == port
    async with mqtt_client(broker, "durable", clean_session=False) as durable:
        assert (await next_message(durable)).payload == b"queued"
        await durable.subscribe("status")
        assert (await next_message(durable)).payload == b"up"


async def test_stop_and_start_serve_on_the_same_port() -> None:
    """stop() ends every connection; start() listens on the same port and clients come back."""
    async with running_broker(ephemeral_settings()) as broker:
        port = broker.mqtt_port
        async with mqtt_client(broker, "app") as client:
            await client.subscribe("t")
            await broker.stop()
            with pytest.raises(aiomqtt.MqttError):
                await next_message(client)
        await broker.start()
        assert broker.mqtt_port == port
        async with mqtt_client(broker, "app") as client:
            await client.subscribe("t")
            await client.publish("t", b"back")
            assert (await next_message(client)).payload == b"back"


async def test_start_fails_naming_the_kept_port_when_it_is_taken() -> None:
    """start() after stop() does not move a port-0 listener to a new port if its old one was
    taken meanwhile: it raises OSError naming the port; once the port is free it starts there."""
    async with running_broker(ephemeral_settings()) as broker:
        port = broker.mqtt_port
        await broker.stop()
        kept = f"port {port}, which it keeps across restarts, is taken"
        with listening_on(port), pytest.raises(OSError, match=kept):
            await broker.start()
        await broker.start()
        assert broker.mqtt_port == port


async def test_a_fixed_port_is_not_kept_once_the_listener_is_on_port_0() -> None:
    """A listener moved from a fixed port to port 0 takes any free port, not the fixed one."""
    with listening_on(0) as fixed:
        pass  # a port free now
    async with running_broker(ephemeral_settings(listeners={"tcp": {"bind": f"127.0.0.1:{fixed}"}})) as broker:
        assert broker.mqtt_port == fixed
        await broker.stop()
        broker.live.current = ephemeral_settings()
        with listening_on(fixed):  # taken: a start that tried it would fail
            await broker.start()
        assert broker.mqtt_port != fixed


@contextlib.contextmanager
def listening_on(port: int) -> Iterator[int]:
    """Another socket listening on loopback ``port`` (0: a free one) until the block ends."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        yield int(taken.getsockname()[1])


async def test_dropped_connection_publishes_the_will(broker: EdgeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """drop_connection ends the connection without DISCONNECT (logged at INFO): the client loses
    it, the will goes out."""
    caplog.set_level(logging.INFO, "edgemq.faults")
    before = broker_tasks()
    will = aiomqtt.Will("devices/app/status", b"offline", qos=1)
    async with mqtt_client(broker, "watcher") as watcher, mqtt_client(broker, "app", will=will) as app:
        await watcher.subscribe("devices/#", qos=1)
        await app.subscribe("x")
        assert broker.faults.drop_connection("app")
        assert "fault: dropped the connection of app" in caplog.text
        assert (await next_message(watcher)).payload == b"offline"
        with pytest.raises(aiomqtt.MqttError):
            await next_message(app)
        assert not broker.faults.drop_connection("app")  # not connected any more
        await assert_healthy(broker, before)


async def test_black_hole_lets_keep_alive_run_out(caplog: pytest.LogCaptureFixture) -> None:
    """A black-holed connection stays open but silent: the broker ends it for keep-alive (will
    published) and the client's own keep-alive gives up on the broker."""
    caplog.set_level(logging.INFO, "edgemq")
    async with running_broker(ephemeral_settings(mqtt={"keepalive_multiplier": 1.5})) as broker:
        before = broker_tasks()
        will = aiomqtt.Will("devices/app/status", b"offline")
        async with mqtt_client(broker, "watcher") as watcher:
            await watcher.subscribe("devices/#")
            async with mqtt_client(broker, "app", will=will, keepalive=1) as app:
                with broker.faults.black_hole("app"):
                    assert (await next_message(watcher)).payload == b"offline"
                    with pytest.raises(aiomqtt.MqttError):
                        await next_message(app)
                    await wait_state(broker, lambda state: state.client("app") is None)
                    assert broker.faults.active_faults == []  # it ended with its connection
            assert "client_id=app reason=keep-alive expired" in caplog.text
            assert "fault cleared: black-hole the connection of app" in caplog.text
            await assert_healthy(broker, before)


async def test_undone_black_hole_resumes_the_connection(broker: EdgeBroker) -> None:
    """Undoing a black hole before keep-alive runs out: what was written meanwhile arrives (as
    TCP resends it after an outage), then the connection carries messages again."""
    async with mqtt_client(broker, "app") as app:
        await app.subscribe("t", qos=1)
        scope = broker.faults.black_hole("app")
        await broker.publish("t", b"during", qos=1)  # QoS 1 into the hole: never resent on this connection
        await broker.publish("t", b"during-0")
        scope.undo()
        await broker.publish("t", b"after", qos=1)
        assert [(await next_message(app)).payload for _ in range(3)] == [b"during", b"during-0", b"after"]


async def test_faults_are_logged_and_reset_clears_them(broker: EdgeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """Enabling and clearing a fault log at INFO; reset() clears every fault."""
    caplog.set_level(logging.INFO, "edgemq.faults")
    broker.faults.refuse_connects(3)
    broker.faults.delay_deliveries(1.0, topic_filter="a/#")
    assert broker.faults.active_faults == [
        "refuse the next 3 connect(s) by CONNACK 3",
        "delay deliveries by 1.0s to topic a/#",
    ]
    await broker.reset()
    assert broker.faults.active_faults == []
    assert not broker.faults.active
    assert [r.levelname for r in caplog.records if r.name == "edgemq.faults"] == ["INFO"] * 4
    async with mqtt_client(broker, "after-reset"):
        await wait_state(broker, lambda s: s.client("after-reset") is not None)


async def test_no_fault_is_reachable_from_the_network(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """Neither the admin API's document nor the configuration knows faults: only embedding code does."""
    document = (await api.get("/v4/openapi.json")).json()
    assert document["paths"]
    assert not [path for path in document["paths"] if "fault" in path.lower()]
    with pytest.raises(pydantic.ValidationError, match="faults"):
        BrokerSettings.model_validate({"faults": {"refuse_connects": 1}})
