"""Topic ACL: SUBACK 0x80 for refused filters (3.9.3), and the same rules for publish and receive."""

from __future__ import annotations

import pytest

from broker.acl import allowed
from broker.settings import Acl
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient, connect, subscribe

pytestmark = pytest.mark.anyio

RULES = {
    "no_match": "allow",
    "rules": [
        {"permit": "allow", "username": "admin", "action": "subscribe", "topics": ["secret/#"]},
        {"permit": "deny", "action": "subscribe", "topics": ["secret/#"]},
        {"permit": "deny", "clientid": "sensor", "action": "publish", "topics": ["cmd/#"]},
    ],
}


def test_first_matching_rule_decides() -> None:
    """Rules apply in order; no_match decides when none matches."""
    acl = Acl.model_validate(RULES)
    assert allowed(acl, "c", "admin", "subscribe", "secret/a")
    assert not allowed(acl, "c", "bob", "subscribe", "secret/#")
    assert not allowed(acl, "c", "bob", "receive", "secret/a")
    assert not allowed(acl, "sensor", None, "publish", "cmd/reboot")
    assert allowed(acl, "sensor", None, "publish", "data/1")
    assert not allowed(Acl(no_match="deny"), "c", None, "publish", "x")


async def test_refused_filter_gets_0x80_in_suback() -> None:
    """A SUBSCRIBE with an allowed and a refused filter gets a granted QoS and 0x80 (3.9.3)."""
    async with running_broker(ephemeral_settings(acl=RULES)) as broker, RawClient.open(broker.mqtt_address) as raw:
        await raw.connack(connect("bob-client", username="bob"))
        await raw.send(subscribe(7, ("public/#", 1), ("secret/#", 1)))
        first, body = await raw.read_packet()
        assert (first, body) == (0x90, b"\x00\x07\x01\x80")
        assert [s.subscriptions for s in broker.state.subscriptions()] == [(("public/#", 1),)]


async def test_acl_governs_publish_and_receive() -> None:
    """A refused publish is not routed (nor counted); a refused topic is not delivered."""
    async with (
        running_broker(ephemeral_settings(acl=RULES)) as broker,
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
        running_broker(ephemeral_settings(acl=RULES)) as broker,
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
        running_broker(ephemeral_settings(acl=RULES)) as broker,
        mqtt_client(broker, "watcher", username="admin") as watcher,
    ):
        await watcher.subscribe("cmd/#")
        async with RawClient.open(broker.mqtt_address) as sensor:
            assert await sensor.connack(connect("sensor", will=("cmd/fire", b"FAKE", 0, True))) == (0, 0)
            sensor.abort()
        await wait_state(broker, lambda s: s.client("sensor") is None)
        assert broker.retained_messages() == []
        assert broker.stats().message_in == 0
