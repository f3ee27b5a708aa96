"""v1 req 10, 11 and 12 against a broker started from a configuration file."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from broker import ConfigSource, EdgeBroker
from tests.helpers import WAIT, mqtt_client, next_message, v1, wait_state
from tests.mqtt_packets import RawClient, connect, subscribe

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
    """req 12 on a broker started without a file: 400 with code 118."""
    response = await post(api, {"req": 12, "data": {"mqtt": {"max_mqueue_len": 10}}})
    assert (response.status_code, response.json()) == (400, {"code": 118, "seq": 1, "rep": 12})


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
        change = {"http_server": {"password": "second-secret"}, "listeners": {"tcp": {"bind": "127.0.0.1:1"}}}
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
    """req 10 without an action is 400/107; an unknown action is 400/108."""
    body: dict[str, object] = {"req": 10} if action is None else {"req": 10, "action": action}
    response = await post(api, body)
    assert (response.status_code, response.json()) == (status, {"code": code, "seq": 1, "rep": 10})


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
    from broker.client_auth import hash_password

    (tmp_path / "passwd").write_text(f"alice:plain-pw\nbob:{hash_password('hashed-pw')}\n")
    text = CONF.replace(
        "auth { allow_anonymous = true }",
        f'auth {{ allow_anonymous = false, password_file = "{tmp_path / "passwd"}" }}',
    )
    async with broker_from_file(tmp_path, text) as (broker, _api, _conf):
        for user, password in [("alice", "plain-pw"), ("bob", "hashed-pw")]:
            async with mqtt_client(broker, user, username=user, password=password):
                pass
        for user, password in [("alice", "wrong"), ("bob", "plain-pw"), ("mallory", "x"), (None, None)]:
            async with RawClient.open(broker.mqtt_address) as raw:
                assert await raw.connack(connect("c", username=user, password=password)) == (0, 5)


async def test_acl_added_by_config_change_applies_after_restart(tmp_path: Path) -> None:
    """An ACL written with req 12 is enforced after req 10 restart (the ACL plugin is always loaded)."""
    async with broker_from_file(tmp_path) as (broker, api, _conf):
        answer = await post(api, {"req": 12, "data": {"acl": {"no_match": "deny"}}})
        assert answer.json()["data"] == {"restart_required": ["acl.no_match"]}
        await broker.restart()
        async with RawClient.open(broker.mqtt_address) as raw:
            await raw.connack(connect("c"))
            await raw.send(subscribe(1, ("secret/#", 0)))
            assert (await raw.read_packet())[1] == b"\x00\x01\x80"


async def test_failed_restart_keeps_listening_as_before(tmp_path: Path) -> None:
    """A restart whose new port is taken logs the error and listens as configured before."""
    async with broker_from_file(tmp_path) as (broker, api, _conf), RawClient.open(broker.mqtt_address):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            await post(api, {"req": 12, "data": {"listeners": {"tcp": {"bind": f"127.0.0.1:{busy}"}}}})
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
