"""req 10 restart: what it applies and keeps, and what it takes from a configuration it cannot apply in full."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiomqtt
import httpx
import pytest

from broker import EdgeBroker
from broker.config.source import override_path
from tests.helpers import mqtt_client, next_message, taken_port, v1, wait_state
from tests.integration.config_broker import broker_from_file, free_port, post
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


async def test_failed_admin_move_keeps_the_new_credentials(tmp_path: Path) -> None:
    """A restart that cannot move the admin API keeps its address but applies the new password."""
    async with broker_from_file(tmp_path) as (broker, _api, conf):
        with taken_port() as port:
            override_path(conf).write_text(f'http_server {{ port = {port}, password = "n3w-s3cret" }}\n')
            await broker.restart()
        assert broker.admin_auth == ("admin", "n3w-s3cret")
        async with httpx.AsyncClient(base_url=broker.api_url) as http:
            old = await http.post("/v1", json={"req": 2, "seq": 1}, auth=("admin", "first-secret"))
            new = await http.post("/v1", json={"req": 2, "seq": 1}, auth=("admin", "n3w-s3cret"))
        assert (old.status_code, new.status_code) == (401, 200)


async def test_restart_applies_a_new_listener_port(tmp_path: Path) -> None:
    """After req 12 and req 10 restart clients reach the new port and the old one is closed."""
    async with broker_from_file(tmp_path) as (broker, api, _conf):
        old_port, new_port = broker.mqtt_port, free_port()
        await post(api, {"req": 12, "data": {"listeners": {"tcp": {"bind": f"127.0.0.1:{new_port}"}}}})
        answer = await post(api, {"req": 10, "action": "Restart"})
        assert answer.json() == {"code": 0, "seq": 1, "rep": 10}
        await broker.wait_for_restarts()
        assert broker.mqtt_port == new_port
        async with aiomqtt.Client("127.0.0.1", new_port, identifier="on-new-port"):
            pass
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", old_port)


async def test_retained_and_persistent_sessions_survive_restart(tmp_path: Path) -> None:
    """A retained message and a persistent session with a queued QoS 1 message survive a restart."""
    async with broker_from_file(tmp_path) as (broker, _api, _conf):
        async with mqtt_client(broker, "durable", clean_session=False) as durable:
            await durable.subscribe("q/#", qos=1)
        async with mqtt_client(broker, "pub") as pub:
            await pub.publish("keep/this", b"retained", retain=True, qos=1)
            await pub.publish("q/1", b"queued", qos=1)
            await wait_state(broker, lambda s: s.stats().message_in == 2)
        await broker.restart()
        async with mqtt_client(broker, "durable", clean_session=False) as durable:
            queued = await next_message(durable)
            assert (queued.payload, queued.qos) == (b"queued", 1)
        async with mqtt_client(broker, "late") as late:
            await late.subscribe("keep/#")
            assert (await next_message(late)).payload == b"retained"


async def test_concurrent_restarts_do_not_interleave(broker: EdgeBroker) -> None:
    """Two restarts at once run one after the other and leave a working broker."""
    await asyncio.gather(broker.restart(), broker.restart())
    assert broker.mqtt_ready
    async with mqtt_client(broker, "after") as client:
        await client.subscribe("x")
        await client.publish("x", b"ok")
        assert (await next_message(client)).payload == b"ok"


async def test_failed_restart_keeps_listening_as_before(tmp_path: Path) -> None:
    """A restart whose new port is taken (by a hand edit) logs the error and listens as configured before."""
    async with broker_from_file(tmp_path) as (broker, _api, conf), RawClient.open(broker.mqtt_address):
        with taken_port() as busy:
            override_path(conf).write_text(f'listeners.tcp.bind = "127.0.0.1:{busy}"\n')
            await broker.restart()
        assert broker.mqtt_ready
        assert broker.settings.listeners.tcp is not None
        assert broker.settings.listeners.tcp.bind == "127.0.0.1:0"  # the running settings, not the failed ones
        async with mqtt_client(broker, "still") as still:
            await still.publish("x", b"y")


@pytest.mark.parametrize(
    ("user", "password", "topic"),
    [
        ("jürgen", "pässwörd", "température/#"),
        ("пользователь", "пароль", "датчики/#"),
        ("用户", "密码", "温度/#"),
        ("🙂", "🔑🔒", "🌡️/#"),
    ],
)
async def test_non_ascii_change_survives_restart(tmp_path: Path, user: str, password: str, topic: str) -> None:
    """A password and an ACL deny rule in any script, set by req 12, hold exactly after a restart."""
    rule = {"permit": "deny", "action": "publish", "topics": [topic]}
    change = {"auth": {"password": {user: password}, "acl": {"rules": [rule]}}}
    async with broker_from_file(tmp_path) as (broker, api, _conf):
        assert (await post(api, {"req": 12, "data": change})).json()["data"] == {"restart_required": []}
        await broker.restart()
        assert broker.settings.auth.password == {user: password}
        assert (await v1(api, 11))["auth"]["acl"]["rules"][0]["topics"] == [topic]
        async with (
            mqtt_client(broker, "watcher") as watcher,
            mqtt_client(broker, "c", username=user, password=password) as c,
        ):
            await watcher.subscribe("#")
            await c.publish(topic.replace("#", "x"), b"denied")
            await c.publish("plain", b"allowed")
            assert (await next_message(watcher)).payload == b"allowed"


async def test_config_reports_the_admin_address_in_effect_after_a_failed_move(tmp_path: Path) -> None:
    """When a restart cannot move the admin API, req 11 reports the address it still serves on."""
    async with broker_from_file(tmp_path) as (broker, api, conf):
        with taken_port() as busy:
            override_path(conf).write_text(f"http_server.port = {busy}\n")  # a hand edit
            await broker.restart()
        assert (await v1(api, 11))["http_server"]["port"] == 0


async def test_restart_keeps_reporting_where_the_log_goes(tmp_path: Path) -> None:
    """log.to, dir and file are set when the process starts: after a restart req 11 reports those in effect."""
    async with broker_from_file(tmp_path) as (broker, api, conf):
        override_path(conf).write_text(f'log {{ to = [file], dir = "{tmp_path}" }}\n')
        await broker.restart()
        assert (await v1(api, 11))["log"]["to"] == ["console"]


async def test_restart_applies_the_log_level(tmp_path: Path) -> None:
    """A log level changed in the file applies at the restart, as req 11 then reports."""
    logger = logging.getLogger("edgemq")
    level = logger.level
    try:
        async with broker_from_file(tmp_path) as (broker, api, conf):
            override_path(conf).write_text("log.level = error\n")
            await broker.restart()
            assert (await v1(api, 11))["log"]["level"] == "error"
            assert logger.level == logging.ERROR
    finally:
        logger.setLevel(level)
