"""v1 req 10, 11 and 12 against a broker started from a configuration file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from broker import ConfigSource, EdgeBroker
from broker.config.source import override_path
from broker.mqtt.encoding import encode_connect, encode_subscribe
from tests.helpers import WAIT, mqtt_client, next_message, taken_port, v1, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

CONF = """# my broker - comments must survive API changes
listeners.tcp { bind = "127.0.0.1:0" }   # any free port
http_server {
    port = 0
    password = "first-secret"
}
auth { allow_anonymous = true }
"""


@contextlib.asynccontextmanager
async def broker_from_file(
    tmp_path: Path, text: str = CONF
) -> AsyncIterator[tuple[EdgeBroker, httpx.AsyncClient, Path]]:
    conf = tmp_path / "edgemq.conf"
    conf.write_text(text)
    broker = EdgeBroker(config=ConfigSource(conf), history=100)
    async with broker, httpx.AsyncClient(auth=broker.admin_auth, timeout=WAIT) as api:
        api.base_url = httpx.URL(broker.api_url)
        yield broker, api, conf


async def post(api: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    return await api.post("/v1", json={"seq": 1, **body})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_read_config_masks_secrets(tmp_path: Path) -> None:
    """req 11 returns the running configuration in the file's shape with secrets masked."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        config = await v1(api, 11)
    assert config["http_server"]["password"] == "******"
    assert config["http_server"]["username"] == "admin"
    assert config["listeners"]["tcp"]["bind"] == "127.0.0.1:0"
    assert "first-secret" not in repr(config)


async def test_write_config_without_file(api: httpx.AsyncClient) -> None:
    """req 12 on a broker started without a file: 400 with code 118 and why."""
    response = await post(api, {"req": 12, "data": {"mqtt": {"max_mqueue_len": 10}}})
    assert (response.status_code, response.json()) == (
        400,
        {"code": 118, "seq": 1, "rep": 12, "message": "the broker was started without a configuration file"},
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"req": 12}, 107),
        ({"req": 12, "data": [1]}, 108),
        ({"req": 12, "data": {"mqtt": {"colour": 1}}}, 108),
        ({"req": 12, "data": {"http_server": {"port": "high"}}}, 108),
        ({"req": 12, "data": {"http_server": {"port": 99999}}}, 108),
    ],
)
async def test_invalid_change_writes_nothing(tmp_path: Path, body: dict[str, object], code: int) -> None:
    """An invalid req 12 is refused and leaves every file byte-identical."""
    async with broker_from_file(tmp_path) as (_, api, conf):
        response = await post(api, body)
        assert (response.status_code, response.json()["code"]) == (400, code)
    assert conf.read_text() == CONF
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


async def test_change_keeps_comments_applies_live_keys_and_lists_the_rest(tmp_path: Path) -> None:
    """req 12 keeps the file's comments, applies live keys at once and lists restart-required ones."""
    async with broker_from_file(tmp_path) as (_broker, api, conf):
        change = {
            "http_server": {"password": "second-secret"},
            "listeners": {"tcp": {"bind": f"127.0.0.1:{free_port()}"}},
        }
        answer = (await post(api, {"req": 12, "data": change})).json()
        assert answer == {"code": 0, "seq": 1, "rep": 12, "data": {"restart_required": ["listeners.tcp.bind"]}}
        assert (await post(api, {"req": 2})).status_code == 401  # the new password is live
        api.auth = httpx.BasicAuth("admin", "second-secret")
        assert (await v1(api, 11))["listeners"]["tcp"]["bind"] == "127.0.0.1:0"  # not before a restart
    assert conf.read_text() == CONF
    assert "second-secret" in (tmp_path / "edgemq.override.conf").read_text()


async def test_masked_secret_posted_back_means_unchanged(tmp_path: Path) -> None:
    """Posting req 11's output back to req 12 changes nothing and needs no restart."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        current = await v1(api, 11)
        response = await post(api, {"req": 12, "data": current})
        assert response.json()["data"] == {"restart_required": []}
        assert (await post(api, {"req": 2})).status_code == 200  # password unchanged


@pytest.mark.parametrize(("action", "code", "status"), [(None, 107, 400), ("reboot", 108, 400), (7, 108, 400)])
async def test_control_action_errors(api: httpx.AsyncClient, action: object, code: int, status: int) -> None:
    """req 10 without an action is 400/107; an unknown action is 400/108; both say why."""
    body: dict[str, object] = {"req": 10} if action is None else {"req": 10, "action": action}
    response = await post(api, body)
    answer = response.json()
    assert (response.status_code, answer.pop("message")[:6]) == (status, "action")
    assert answer == {"code": code, "seq": 1, "rep": 10}


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


async def test_password_list_admits_the_right_user_only(tmp_path: Path) -> None:
    """With a password file the right password connects; a wrong one is refused (CONNACK 5)."""
    from broker.mqtt.client_auth import hash_password

    (tmp_path / "passwd").write_text(f"alice:plain-pw\nbob:{hash_password('hashed-pw')}\n")
    text = CONF.replace(
        "auth { allow_anonymous = true }",
        f'auth {{ allow_anonymous = false, password_file = "{tmp_path / "passwd"}" }}',
    )
    async with broker_from_file(tmp_path, text) as (broker, _api, _conf):
        for user, password in [("alice", "plain-pw"), ("bob", "hashed-pw")]:
            async with mqtt_client(broker, user, username=user, password=password):
                pass
        for name, secret in [("alice", "wrong"), ("bob", "plain-pw"), ("mallory", "x"), (None, None)]:
            async with RawClient.open(broker.mqtt_address) as raw:
                assert await raw.connack(encode_connect("c", username=name, password=secret)) == (0, 5)


async def test_acl_changed_by_req12_applies_at_once(tmp_path: Path) -> None:
    """An ACL change written with req 12 (auth.*) is enforced at once, without a restart."""
    async with broker_from_file(tmp_path) as (broker, api, _conf):
        answer = await post(api, {"req": 12, "data": {"auth": {"no_match": "deny"}}})
        assert answer.json()["data"] == {"restart_required": []}
        async with RawClient.open(broker.mqtt_address) as raw:
            await raw.connack(encode_connect("c"))
            await raw.send(encode_subscribe(1, ("secret/#", 0)))
            assert (await raw.read_packet())[1] == b"\x00\x01\x80"


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


async def test_override_file_is_private(tmp_path: Path) -> None:
    """The override file may hold passwords: only its owner can read it."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        await post(api, {"req": 12, "data": {"http_server": {"password": "p2"}}})
    assert (tmp_path / "edgemq.override.conf").stat().st_mode & 0o777 == 0o600


def refused(response: httpx.Response, key: str) -> str:
    """The message of a 400/108 that names ``key``."""
    answer = response.json()
    assert (response.status_code, answer["code"]) == (400, 108), answer
    assert key in answer["message"], answer
    return str(answer["message"])


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"http_server": {"username": ""}}, "http_server.username"),
        ({"http_server": {"username": "ad:min"}}, "http_server.username"),
        ({"http_server": {"password": ""}}, "http_server.password"),
        ({"http_server": {"max_body": 512}}, "http_server.max_body"),
        ({"mqtt": {"max_packet_size": 0}}, "mqtt.max_packet_size"),
        ({"mqtt": {"max_packet_size": 268435456}}, "mqtt.max_packet_size"),
        ({"mqtt": {"retry_interval": 1e300}}, "mqtt.retry_interval"),
        ({"shutdown_timeout": "2d"}, "shutdown_timeout"),
        ({"http_server": {"ip_addr": "admin.example"}}, "http_server.ip_addr"),
        ({"listeners": {"tcp": None}}, "listeners"),
    ],
)
async def test_req12_range_checks_like_the_file(tmp_path: Path, change: dict[str, object], key: str) -> None:
    """req 12 refuses what the file refuses (400/108 with a message naming the key), writing nothing."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        refused(await post(api, {"req": 12, "data": change}), key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"http_server": {"password": ""}}, "http_server.password"),
        ({"http_server": {"max_body": 10}}, "http_server.max_body"),
        ({"mqtt": {"connect_timeout": 0}}, "mqtt.connect_timeout"),
        ({"mqtt": {"keepalive_multiplier": 1e300}}, "mqtt.keepalive_multiplier"),
    ],
)
async def test_reload_range_checks_like_the_file(api: httpx.AsyncClient, change: dict[str, object], key: str) -> None:
    """v4 /reload refuses out-of-range values with 400/108 and a message naming the key; nothing changes."""
    before = (await api.get("/v4/reload")).json()
    refused(await api.post("/v4/reload", json={"data": change}), key)
    assert (await api.get("/v4/reload")).json() == before


async def test_admin_api_moving_to_a_taken_port_is_refused(tmp_path: Path) -> None:
    """req 12 refuses an admin API address that cannot be bound now: the admin would be locked out."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        with taken_port() as busy:
            message = refused(
                await post(api, {"req": 12, "data": {"http_server": {"port": busy}}}), "http_server: cannot listen on"
            )
    assert "the admin API would be unreachable" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


async def test_admin_api_moving_to_a_foreign_address_is_refused(tmp_path: Path) -> None:
    """req 12 refuses an admin API address the machine does not have (192.0.2.1, TEST-NET-1)."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        response = await post(api, {"req": 12, "data": {"http_server": {"ip_addr": "192.0.2.1"}}})
        refused(response, "http_server: cannot listen on 192.0.2.1:0")


async def test_mqtt_listener_moving_to_a_taken_port_is_refused(tmp_path: Path) -> None:
    """req 12 refuses an MQTT listener address that cannot be bound now."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        with taken_port() as busy:
            change = {"listeners": {"tcp": {"bind": f"127.0.0.1:{busy}"}}}
            message = refused(await post(api, {"req": 12, "data": change}), "listeners.tcp.bind")
    assert "the listener would not start" in message


async def test_turning_admin_auth_off_is_not_a_lock_out(tmp_path: Path) -> None:
    """http_server.auth_type = no_auth is accepted (it locks nobody out); it applies at the restart."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        answer = await post(api, {"req": 12, "data": {"http_server": {"auth_type": "no_auth"}}})
        assert answer.json()["data"] == {"restart_required": ["http_server.auth_type"]}


async def test_change_to_a_key_the_environment_sets_is_refused(tmp_path: Path) -> None:
    """req 12 refuses a new value for a key the environment overrides (it would never apply); the same value passes."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(CONF)
    source = ConfigSource(conf, env={"EDGEMQ_MQTT__MAX_MQUEUE_LEN": "5"})
    async with (
        EdgeBroker(config=source) as broker,
        httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "first-secret"), timeout=WAIT) as api,
    ):
        message = refused(await post(api, {"req": 12, "data": {"mqtt": {"max_mqueue_len": 9}}}), "mqtt.max_mqueue_len")
        assert "set by the environment" in message
        answer = await post(api, {"req": 12, "data": {"mqtt": {"max_mqueue_len": 5}}})
        assert answer.json()["data"] == {"restart_required": []}


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


async def test_value_that_cannot_be_stored_exactly_is_refused(tmp_path: Path) -> None:
    """req 12 with a value the override file cannot hold exactly (a control character): 400/108, nothing written."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        refused(await post(api, {"req": 12, "data": {"http_server": {"password": "bell\x07"}}}), "http_server.password")
        assert (await post(api, {"req": 2})).status_code == 200  # the password is unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


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


@pytest.fixture
def root_logger_at_error() -> Iterator[None]:
    """The root logger at ERROR, as ``log.level = error`` or a host application sets it (pyhocon's warnings dropped)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


ALLMAN_CONF = CONF.replace(
    "auth { allow_anonymous = true }",
    'auth\n{\n  allow_anonymous = false\n  password = { include "passwd.conf" }\n}',
)


@pytest.mark.usefixtures("root_logger_at_error")
async def test_req12_refuses_a_change_once_an_include_is_missing(tmp_path: Path) -> None:
    """req 12 re-reads the file: an include gone missing (key and ``{`` on two lines) is 400/108, auth unchanged."""
    (tmp_path / "passwd.conf").write_text('alice = "pw"\n')
    async with broker_from_file(tmp_path, ALLMAN_CONF) as (broker, api, _conf):
        (tmp_path / "passwd.conf").rename(tmp_path / "passwd.conf.old")
        refused(await post(api, {"req": 12, "data": {"auth": {"no_match": "deny"}}}), "passwd.conf")
        assert broker.settings.auth.password == {"alice": "pw"}
    assert not (tmp_path / "edgemq.override.conf").exists()


@pytest.mark.usefixtures("root_logger_at_error")
async def test_restart_keeps_the_running_auth_once_an_include_is_missing(tmp_path: Path) -> None:
    """A restart after an include went missing (key and ``{`` on two lines) keeps the running password list."""
    (tmp_path / "passwd.conf").write_text('alice = "pw"\n')
    async with broker_from_file(tmp_path, ALLMAN_CONF) as (broker, _api, _conf):
        (tmp_path / "passwd.conf").rename(tmp_path / "passwd.conf.old")
        await broker.restart()
        assert broker.settings.auth.password == {"alice": "pw"}
        async with RawClient.open(broker.mqtt_address) as raw:
            assert await raw.connack(encode_connect("c", username="mallory", password="x")) == (0, 5)


async def test_listener_moving_onto_another_listeners_port_is_refused(tmp_path: Path) -> None:
    """req 12 refuses a listener on the port another listener keeps (400/108 naming both keys), writing nothing."""
    port = free_port()
    text = CONF.replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"')
    async with broker_from_file(tmp_path, text) as (_, api, _conf):
        change = {"listeners": {"ws": {"bind": f"127.0.0.1:{port}/mqtt"}}}
        message = refused(await post(api, {"req": 12, "data": change}), "listeners.ws.bind")
    assert "listeners.tcp.bind" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


async def test_two_listeners_moving_to_one_port_are_refused(tmp_path: Path) -> None:
    """req 12 refuses two listeners moving to one new port (400/108 naming both keys), writing nothing."""
    port = free_port()
    change = {"listeners": {"tcp": {"bind": f"127.0.0.1:{port}"}, "ws": {"bind": f"0.0.0.0:{port}/mqtt"}}}
    async with broker_from_file(tmp_path) as (_, api, _conf):
        message = refused(await post(api, {"req": 12, "data": change}), "listeners.tcp.bind")
    assert "listeners.ws.bind" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


@pytest.mark.parametrize("first", ["listener", "admin API"])
async def test_admin_api_and_listener_on_one_new_port_are_refused(tmp_path: Path, first: str) -> None:
    """req 12 refuses moving the admin API to the port a listener moves to, or the reverse (400/108 naming both)."""
    port = free_port()
    changes = {
        "listener": {"listeners": {"tcp": {"bind": f"127.0.0.1:{port}"}}},
        "admin API": {"http_server": {"port": port}},
    }
    second = next(name for name in changes if name != first)
    async with broker_from_file(tmp_path) as (_, api, conf):
        assert (await post(api, {"req": 12, "data": changes[first]})).json()["code"] == 0
        written = override_path(conf).read_text()
        message = refused(await post(api, {"req": 12, "data": changes[second]}), "listeners.tcp.bind")
    assert "http_server" in message
    assert override_path(conf).read_text() == written
