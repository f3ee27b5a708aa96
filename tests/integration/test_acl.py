"""Topic ACL (auth.acl, NanoMQ's rules): SUBACK 0x80 for refused filters (3.9.3), the same rules
for publish and receive, the ways a rule names its clients, and auth.deny_action."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.config.settings import Acl
from broker.mqtt.acl import Action, Client, allowed
from broker.mqtt.encoding import encode_connect, encode_publish, encode_subscribe
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

RULES: list[dict[str, Any]] = [
    {"permit": "allow", "username": "admin", "action": "subscribe", "topics": ["secret/#"]},
    {"permit": "deny", "action": "subscribe", "topics": ["secret/#"]},
    {"permit": "deny", "clientid": "sensor", "action": "publish", "topics": ["cmd/#"]},
]
AUTH = {"no_match": "allow", "acl": {"rules": RULES}}


def acl(*rules: dict[str, Any], no_match: str = "allow") -> Acl:
    return Acl.model_validate({"no_match": no_match, "rules": list(rules)})


async def read_until_closed(raw: RawClient) -> bytes:
    """Everything the broker sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(WAIT):
        while chunk := await raw.reader.read(4096):
            received += chunk
    return received


def test_first_matching_rule_decides() -> None:
    """Rules apply in order; no_match decides when none matches."""
    rules = acl(*RULES)
    assert allowed(rules, Client("c", "admin"), "subscribe", "secret/a")
    assert not allowed(rules, Client("c", "bob"), "subscribe", "secret/#")
    assert not allowed(rules, Client("c", "bob"), "receive", "secret/a")
    assert not allowed(rules, Client("sensor"), "publish", "cmd/reboot")
    assert allowed(rules, Client("sensor"), "publish", "data/1")
    assert not allowed(acl(no_match="deny"), Client("c"), "publish", "x")


def test_wildcard_rules_cover_dollar_topics() -> None:
    """A rule on "#" or "+/..." covers $ topics too, so a deny-all rule still denies them."""
    rules = acl(
        {"permit": "allow", "username": "admin", "action": "pubsub", "topics": ["#"]},
        {"permit": "deny", "action": "pubsub", "topics": ["#"]},
    )
    cases: list[tuple[Action, str]] = [
        ("publish", "$app/cmd"),
        ("publish", "$SYS/x"),
        ("subscribe", "$app/#"),
        ("receive", "$app/cmd"),
    ]
    for action, topic in cases:
        assert not allowed(rules, Client("c", "mallory"), action, topic)
        assert allowed(rules, Client("c", "admin"), action, topic)
    deny_plus = acl({"permit": "deny", "action": "publish", "topics": ["+/cmd"]})
    assert not allowed(deny_plus, Client("c"), "publish", "$app/cmd")


def test_rule_without_topics_covers_every_topic() -> None:
    """A rule without topics (NanoMQ's last rule {"permit": "allow"}) covers every topic."""
    rules = acl({"permit": "allow"}, no_match="deny")
    assert allowed(rules, Client("c"), "publish", "any/topic")
    assert allowed(rules, Client("c"), "subscribe", "#")


@pytest.mark.parametrize(
    ("ipaddr", "address", "applies"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("192.168.1.0/24", "192.168.1.77", True),
        ("192.168.1.0/24", "192.168.2.1", False),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),
        ("::1", "::1", True),
        ("127.0.0.1", None, False),
    ],
)
def test_ipaddr_names_an_address_or_a_network(ipaddr: str, address: str | None, applies: bool) -> None:
    """ipaddr matches the client's address, one address or a network (IPv4-mapped addresses too)."""
    rules = acl({"permit": "deny", "ipaddr": ipaddr, "topics": ["t"]})
    assert allowed(rules, Client("c", None, address), "publish", "t") is not applies


def test_and_or_terms() -> None:
    """An "and" rule needs every term to match, an "or" rule one of them."""
    rules = acl(
        {"permit": "allow", "and": [{"username": "admin"}, {"clientid": "admin"}], "topics": ["a"]},
        {"permit": "allow", "or": [{"username": "emqx"}, {"clientid": "emqx"}], "topics": ["o"]},
        no_match="deny",
    )
    assert allowed(rules, Client("admin", "admin"), "publish", "a")
    assert not allowed(rules, Client("other", "admin"), "publish", "a")
    assert allowed(rules, Client("x", "emqx"), "publish", "o")
    assert allowed(rules, Client("emqx", None), "publish", "o")
    assert not allowed(rules, Client("x", "y"), "publish", "o")


def test_placeholders_stand_for_the_client() -> None:
    """${clientid} and ${username} in a topic stand for the client's own values, one level only."""
    rules = acl(
        {"permit": "allow", "topics": ["devices/${clientid}/#", "users/${username}"]},
        no_match="deny",
    )
    assert allowed(rules, Client("d1", "u1"), "publish", "devices/d1/temp")
    assert not allowed(rules, Client("d1", "u1"), "publish", "devices/d2/temp")
    assert allowed(rules, Client("d1", "u1"), "subscribe", "users/u1")
    assert not allowed(rules, Client("#", "u1"), "subscribe", "devices/#")  # a wildcard id never widens an allow
    assert not allowed(rules, Client("d1", None), "publish", "users/")


def test_placeholder_deny_holds_for_an_id_that_cannot_be_placed() -> None:
    """A deny rule with a placeholder still denies a client whose id holds a wildcard or a slash."""
    rules = acl({"permit": "deny", "action": "publish", "topics": ["private/${clientid}/#"]})
    assert not allowed(rules, Client("a/b"), "publish", "private/a/b/x")
    assert allowed(rules, Client("ok"), "publish", "private/other/x")


async def test_refused_filter_gets_0x80_in_suback() -> None:
    """A SUBSCRIBE with an allowed and a refused filter gets a granted QoS and 0x80 (3.9.3)."""
    async with running_broker(ephemeral_settings(auth=AUTH)) as broker, RawClient.open(broker.mqtt_address) as raw:
        await raw.connack(encode_connect("bob-client", username="bob"))
        await raw.send(encode_subscribe(7, ("public/#", 1), ("secret/#", 1)))
        first, body = await raw.read_packet()
        assert (first, body) == (0x90, b"\x00\x07\x01\x80")
        assert [s.subscriptions for s in broker.state.subscriptions()] == [(("public/#", 1),)]


async def test_acl_governs_publish_and_receive() -> None:
    """A refused publish is not routed (nor counted); a refused topic is not delivered."""
    async with (
        running_broker(ephemeral_settings(auth=AUTH)) as broker,
        mqtt_client(broker, "watcher", username="admin") as watcher,
        mqtt_client(broker, "sensor") as sensor,
    ):
        await watcher.subscribe([("cmd/#", 0), ("secret/#", 0), ("data/#", 0)])
        await sensor.publish("cmd/reboot", b"refused")
        await sensor.publish("data/1", b"allowed")
        assert (await next_message(watcher)).payload == b"allowed"
        await wait_state(broker, lambda s: s.stats().message_in == 1)


async def test_acl_governs_receive_through_wide_filters() -> None:
    """A client allowed to subscribe to '#' still does not receive topics it may not subscribe to."""
    async with (
        running_broker(ephemeral_settings(auth=AUTH)) as broker,
        mqtt_client(broker, "bob", username="bob") as bob,
        mqtt_client(broker, "admin", username="admin") as admin,
    ):
        await bob.subscribe("#")
        await admin.publish("secret/a", b"hidden")
        await admin.publish("public/b", b"visible")
        assert (await next_message(bob)).payload == b"visible"


async def test_will_obeys_the_publish_acl() -> None:
    """A will on a topic the client may not publish to is not published (nor retained)."""
    async with (
        running_broker(ephemeral_settings(auth=AUTH)) as broker,
        mqtt_client(broker, "watcher", username="admin") as watcher,
    ):
        await watcher.subscribe("cmd/#")
        async with RawClient.open(broker.mqtt_address) as sensor:
            assert await sensor.connack(encode_connect("sensor", will=("cmd/fire", b"FAKE", 0, True))) == (0, 0)
            sensor.abort()
        await wait_state(broker, lambda s: s.client("sensor") is None)
        assert broker.retained_messages() == []
        assert broker.stats().message_in == 0


async def test_ipaddr_rule_applies_to_the_client_address() -> None:
    """A deny rule for the client's own network refuses its SUBSCRIBE; one for another network does not."""
    rules = [
        {"permit": "deny", "ipaddr": "127.0.0.0/8", "action": "subscribe", "topics": ["lan/#"]},
        {"permit": "deny", "ipaddr": "10.0.0.0/8", "action": "subscribe", "topics": ["wan/#"]},
    ]
    settings = ephemeral_settings(auth={"acl": {"rules": rules}})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as raw:
        await raw.connack(encode_connect("local"))
        await raw.send(encode_subscribe(3, ("lan/#", 0), ("wan/#", 0)))
        assert await raw.read_packet() == (0x90, b"\x00\x03\x80\x00")


async def test_deny_action_disconnect_on_publish() -> None:
    """With deny_action = disconnect a refused PUBLISH closes the connection and is not routed."""
    settings = ephemeral_settings(auth={**AUTH, "deny_action": "disconnect"})
    async with (
        running_broker(settings) as broker,
        mqtt_client(broker, "watcher", username="admin") as watcher,
        RawClient.open(broker.mqtt_address) as sensor,
    ):
        await watcher.subscribe("cmd/#")
        await sensor.connack(encode_connect("sensor"))
        await sensor.send(encode_publish("cmd/reboot", b"refused", qos=1, packet_id=1))
        assert await read_until_closed(sensor) == b""  # no PUBACK: the connection just ends
        await wait_state(broker, lambda s: s.client("sensor") is None)
        assert broker.stats().message_in == 0


async def test_deny_action_disconnect_on_subscribe() -> None:
    """With deny_action = disconnect a SUBSCRIBE with a refused filter closes the connection without SUBACK."""
    settings = ephemeral_settings(auth={**AUTH, "deny_action": "disconnect"})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as raw:
        await raw.connack(encode_connect("bob-client", username="bob"))
        await raw.send(encode_subscribe(7, ("public/#", 1), ("secret/#", 1)))
        assert await read_until_closed(raw) == b""
        await wait_state(broker, lambda s: s.client("bob-client") is None)
        assert broker.state.subscriptions() == []


async def test_deny_action_disconnect_lets_allowed_traffic_through() -> None:
    """With deny_action = disconnect an allowed SUBSCRIBE and PUBLISH work as usual."""
    settings = ephemeral_settings(auth={**AUTH, "deny_action": "disconnect"})
    async with running_broker(settings) as broker, mqtt_client(broker, "bob", username="bob") as bob:
        await bob.subscribe("public/#")
        await bob.publish("public/x", b"ok")
        assert (await next_message(bob)).payload == b"ok"
