"""Auth and topic plugins from the ``plugins`` section, chained after edgemq's own checks
(``auth.plugin_mode``), with time limits; amqtt's contrib JWT plugins with tokens signed here."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect, encode_publish, encode_subscribe
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

REFUSER = "tests.plugin_examples.RefusingAuthPlugin"
SECRET = "test-secret-0123456789-abcdefghijklmnop"  # a key for the tokens made in this test
JWT_AUTH = {"amqtt.contrib.jwt.UserAuthJwtPlugin": {"secret_key": SECRET, "user_claim": "sub"}}


async def connack_code(broker: EdgeBroker, client_id: str, username: str | None, password: str | None = None) -> int:
    """The CONNACK return code the broker answers a CONNECT with."""
    async with RawClient.open(broker.mqtt_address) as raw:
        return (await raw.connack(encode_connect(client_id, username=username, password=password)))[1]


def token(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


async def test_a_plugin_can_refuse_what_edgemq_allows() -> None:
    """restrict (default): an anonymous-friendly broker still refuses a user a plugin refuses."""
    settings = ephemeral_settings(plugins={REFUSER: {"refuse": ["mallory"]}})
    async with running_broker(settings) as broker:
        assert await connack_code(broker, "m", "mallory", "pw") == 5
        assert await connack_code(broker, "a", "alice", "pw") == 0  # the plugin abstains
        assert await connack_code(broker, "anon", None) == 0


async def test_a_plugin_cannot_admit_what_edgemq_refuses_by_default() -> None:
    """restrict: a plugin allowing a user does not override a refusing password list."""
    auth = {"allow_anonymous": False, "password": {"alice": "right"}}
    settings = ephemeral_settings(auth=auth, plugins={REFUSER: {"allow": ["alice"]}})
    async with running_broker(settings) as broker:
        assert await connack_code(broker, "a", "alice", "wrong") == 5
        assert await connack_code(broker, "a", "alice", "right") == 0


async def test_in_decide_mode_a_plugin_answers_before_the_password_list() -> None:
    """decide: a plugin's answer wins; when every plugin abstains the password list decides."""
    auth = {"allow_anonymous": False, "password": {"alice": "right"}, "plugin_mode": "decide"}
    settings = ephemeral_settings(auth=auth, plugins={REFUSER: {"allow": ["device1"], "refuse": ["alice"]}})
    async with running_broker(settings) as broker:
        assert await connack_code(broker, "d", "device1", "anything") == 0
        assert await connack_code(broker, "a", "alice", "right") == 5
        assert await connack_code(broker, "b", "bob", "x") == 5  # abstained: the list does not know bob


async def test_a_plugin_that_raises_refuses_that_client_only(caplog: pytest.LogCaptureFixture) -> None:
    """A plugin raising: that CONNECT is refused and logged, the broker serves the next client."""
    settings = ephemeral_settings(plugins={REFUSER: {"fail": ["carol"]}})
    with caplog.at_level(logging.WARNING, logger="edgemq.mqtt"):
        async with running_broker(settings) as broker:
            assert await connack_code(broker, "c", "carol", "pw") == 5
            assert await connack_code(broker, "d", "dave", "pw") == 0
    assert any("RefusingAuthPlugin failed" in r.getMessage() and "ConnectionError" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_a_hanging_plugin_refuses_after_the_plugin_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A plugin that never answers: CONNACK 5 after auth.plugin_timeout, logged, never a stuck CONNECT."""
    settings = ephemeral_settings(auth={"plugin_timeout": 0.2}, plugins={"tests.plugin_examples.HangingAuthPlugin": {}})
    with caplog.at_level(logging.WARNING, logger="edgemq.mqtt"):
        async with running_broker(settings) as broker:
            assert await connack_code(broker, "h", "henry", "pw") == 5
    assert any("HangingAuthPlugin did not answer" in r.getMessage() for r in caplog.records)


async def test_a_topic_plugin_narrows_publish_subscribe_and_receive() -> None:
    """A topic plugin refusing blocked/#: SUBACK 0x80, a publish there is not delivered, others pass."""
    settings = ephemeral_settings(plugins={"tests.plugin_examples.TopicBlockPlugin": {}})
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as raw:
            assert await raw.connack(encode_connect("s")) == (0, 0)
            await raw.send(encode_subscribe(1, ("blocked/#", 0), ("open/#", 0)))
            assert await raw.read_packet() == (0x90, b"\x00\x01\x80\x00")
        async with mqtt_client(broker, "sub") as client:
            await client.subscribe("#")
            async with RawClient.open(broker.mqtt_address) as pub:
                assert await pub.connack(encode_connect("p")) == (0, 0)
                await pub.send(encode_publish("blocked/x", b"no"))
                await pub.send(encode_publish("open/x", b"yes"))
            assert (await next_message(client)).payload == b"yes"


async def test_a_signed_jwt_admits_its_user() -> None:
    """amqtt's UserAuthJwtPlugin: a token signed with the key, naming the user, is admitted."""
    async with running_broker(ephemeral_settings(plugins=JWT_AUTH)) as broker:
        assert await connack_code(broker, "j", "dev1", token({"sub": "dev1"})) == 0


@pytest.mark.parametrize(
    "password",
    [
        token({"sub": "dev1", "exp": int(time.time()) - 60}),
        token({"sub": "dev1"}, key="another-key-0123456789-abcdefghijklmnop"),
        token({"sub": "someone-else"}),
        "not-a-token",
    ],
    ids=["expired", "wrongly-signed", "other-user", "garbage"],
)
async def test_a_bad_jwt_is_refused(password: str) -> None:
    """Expired, wrongly signed, another user's or malformed tokens get CONNACK 5."""
    async with running_broker(ephemeral_settings(plugins=JWT_AUTH)) as broker:
        assert await connack_code(broker, "j", "dev1", password) == 5


async def test_jwt_topic_claims_decide_publish_and_subscribe() -> None:
    """amqtt's TopicAuthJwtPlugin: the token's claims list the filters a client may use."""
    claims = {"sub": "dev1", "pub": ["dev1/#"], "subs": ["cmd/dev1"], "recv": ["cmd/dev1"]}
    topic_options = {"secret_key": SECRET, "publish_claim": "pub", "subscribe_claim": "subs", "receive_claim": "recv"}
    plugins = JWT_AUTH | {"amqtt.contrib.jwt.TopicAuthJwtPlugin": topic_options}
    async with (
        running_broker(ephemeral_settings(plugins=plugins)) as broker,
        mqtt_client(broker, "watcher") as watcher,
        RawClient.open(broker.mqtt_address) as raw,
    ):
        await watcher.subscribe("#")  # no token: the JWT plugins abstain for it
        assert await raw.connack(encode_connect("j", username="dev1", password=token(claims))) == (0, 0)
        await raw.send(encode_subscribe(1, ("cmd/dev1", 1), ("cmd/other", 1)))
        assert await raw.read_packet() == (0x90, b"\x00\x01\x01\x80")
        await raw.send(encode_publish("other/x", b"refused"))
        await raw.send(encode_publish("dev1/x", b"allowed"))
        message = await next_message(watcher)
        assert (str(message.topic), message.payload) == ("dev1/x", b"allowed")
