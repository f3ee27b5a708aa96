"""What req 12 and v4 /reload refuse, writing nothing: values the file refuses, addresses that cannot be bound."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker import ConfigSource, EdgeBroker
from broker.config.source import override_path
from tests.helpers import WAIT, taken_port
from tests.integration.config_broker import CONF, broker_from_file, free_port, post, refused

pytestmark = pytest.mark.anyio


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


async def test_value_that_cannot_be_stored_exactly_is_refused(tmp_path: Path) -> None:
    """req 12 with a value the override file cannot hold exactly (a control character): 400/108, nothing written."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        refused(await post(api, {"req": 12, "data": {"http_server": {"password": "bell\x07"}}}), "http_server.password")
        assert (await post(api, {"req": 2})).status_code == 200  # the password is unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgemq.conf"]


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
