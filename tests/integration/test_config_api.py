"""v1 req 10, 11 and 12 against a broker started from a configuration file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.mqtt.encoding import encode_connect, encode_subscribe
from tests.helpers import mqtt_client, v1
from tests.integration.config_broker import CONF, broker_from_file, free_port, post, refused
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


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


async def test_override_file_is_private(tmp_path: Path) -> None:
    """The override file may hold passwords: only its owner can read it."""
    async with broker_from_file(tmp_path) as (_, api, _conf):
        await post(api, {"req": 12, "data": {"http_server": {"password": "p2"}}})
    assert (tmp_path / "edgemq.override.conf").stat().st_mode & 0o777 == 0o600


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
