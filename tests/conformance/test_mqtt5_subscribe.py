"""MQTT 5.0 SUBSCRIBE and UNSUBSCRIBE: subscription options (no local, retain as published, retain
handling), subscription identifiers, and the reason codes of SUBACK and UNSUBACK (3.8 to 3.11).

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.conftest import BROKERS, Target
from tests.helpers import ephemeral_settings, running_broker
from tests.mqtt5_packets import (
    DISCONNECT,
    PUBLISH,
    SUBACK,
    UNSUBACK,
    Packet,
    V5Client,
    connected,
    options,
    props,
    publish,
    subscribe,
    unsubscribe,
)
from tests.upstream import mosquitto_upstream

pytestmark = pytest.mark.anyio


async def retain(target: Target, topic: str) -> None:
    """Leave a retained message on ``topic`` (each test has a broker of its own)."""
    async with connected(target.address, "holder") as holder:
        await holder.publish_acked(topic, b"retained", retain=True)


async def first_after_marker(client: V5Client, topic: str) -> Packet:
    """Publish a live marker to ``topic`` (QoS 0) and return the first PUBLISH that arrives: the marker,
    unless something was sent before it."""
    await client.send(publish(topic, b"marker"))
    return await client.expect(PUBLISH)


async def test_no_local_keeps_a_clients_own_messages_from_it(target: Target) -> None:
    """MQTT-3.8.3-3: with No Local a client does not get the messages it publishes; others' messages arrive."""
    async with connected(target.address, "self") as me, connected(target.address, "other") as other:
        await me.subscribe(("nl/t", options(1, no_local=True)))
        await me.publish_acked("nl/t", b"mine")
        await other.publish_acked("nl/t", b"theirs")
        assert (await me.expect(PUBLISH)).payload == b"theirs"


async def test_retain_as_published_keeps_the_retain_flag(target: Target) -> None:
    """MQTT-3.3.1-13: with Retain As Published a live retained message is forwarded with RETAIN 1."""
    async with connected(target.address, "keeper") as sub:
        await sub.subscribe(("rap/t", options(0, retain_as_published=True, retain_handling=2)))
        async with connected(target.address, "pub") as pub:
            await pub.publish_acked("rap/t", b"live", retain=True)
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.retain) == (b"live", True)


async def test_without_retain_as_published_the_retain_flag_is_cleared(target: Target) -> None:
    """MQTT-3.3.1-12: without Retain As Published a live retained message is forwarded with RETAIN 0."""
    async with connected(target.address, "clearer") as sub:
        await sub.subscribe(("rap/t", options(0, retain_handling=2)))
        async with connected(target.address, "pub") as pub:
            await pub.publish_acked("rap/t", b"live", retain=True)
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.retain) == (b"live", False)


async def test_retain_handling_0_sends_retained_messages_at_each_subscribe(target: Target) -> None:
    """MQTT-3.3.1-9: with Retain Handling 0 the retained message is sent at each subscribe, a repeated one too."""
    await retain(target, "rh/t")
    async with connected(target.address, "rh0") as sub:
        for packet_id in (1, 2):
            await sub.subscribe(("rh/t", options(0, retain_handling=0)), packet_id=packet_id)
            message = await sub.expect(PUBLISH)
            assert (message.payload, message.retain) == (b"retained", True)


async def test_retain_handling_1_sends_retained_messages_for_a_new_subscription_only(target: Target) -> None:
    """MQTT-3.3.1-10: with Retain Handling 1 the retained message is sent for a new subscription, not a repeated one."""
    await retain(target, "rh/t")
    async with connected(target.address, "rh1") as sub:
        await sub.subscribe(("rh/t", options(0, retain_handling=1)), packet_id=1)
        assert (await sub.expect(PUBLISH)).payload == b"retained"
        await sub.subscribe(("rh/t", options(0, retain_handling=1)), packet_id=2)
        assert (await first_after_marker(sub, "rh/t")).payload == b"marker"


async def test_retain_handling_2_sends_no_retained_messages(target: Target) -> None:
    """MQTT-3.3.1-11: with Retain Handling 2 no retained message is sent at the subscribe."""
    await retain(target, "rh/t")
    async with connected(target.address, "rh2") as sub:
        await sub.subscribe(("rh/t", options(0, retain_handling=2)))
        assert (await first_after_marker(sub, "rh/t")).payload == b"marker"


async def test_subscription_identifiers_come_with_matching_messages(target: Target) -> None:
    """MQTT-3.3.4-3, -4, -5: a message matching two subscriptions: one copy with both identifiers, or one each."""
    async with connected(target.address, "ids") as sub, connected(target.address, "pub") as pub:
        await sub.subscribe(("sid/#", options(0)), packet_id=1, properties=props(subscription_identifier=1))
        await sub.subscribe(("sid/+/b", options(0)), packet_id=2, properties=props(subscription_identifier=2))
        await sub.subscribe(("mark", options(0)), packet_id=3)  # no identifier
        await pub.publish_acked("sid/a/b", b"both")
        await pub.publish_acked("mark", b"end", packet_id=2)
        copies: list[list[int]] = []
        while (message := await sub.expect(PUBLISH)).topic == "sid/a/b":
            copies.append(sorted(message.properties.subscription_identifiers))
        assert sorted(copies) in ([[1, 2]], [[1], [2]])  # one copy with both, or one copy per subscription
        assert message.properties.subscription_identifiers == []  # its subscription has none


async def test_suback_grants_each_filter_its_qos(target: Target) -> None:
    """MQTT-3.8.4-6, 3.9.3: the SUBACK has a reason code per filter: the granted QoS."""
    async with connected(target.address, "granted") as sub:
        answer = await sub.subscribe(("g/0", options(0)), ("g/1", options(1)), ("g/2", options(2)))
        assert answer.reasons == [0, 1, 2]


async def test_unsuback_says_which_subscriptions_existed(target: Target) -> None:
    """3.11.3: UNSUBACK reason codes: 0x00 for a removed subscription, 0x11 (No subscription existed) otherwise."""
    async with connected(target.address, "unsub") as client:
        await client.subscribe(("u/t", options(0)))
        await client.send(unsubscribe(2, "u/t", "u/never"))
        assert (await client.expect(UNSUBACK)).reasons == [0x00, 0x11]


async def test_an_invalid_topic_filter_is_refused(target: Target) -> None:
    """4.7.1, 3.9.3: "a/#/b" gets SUBACK 0x8F (Topic Filter invalid), or DISCONNECT 0x81/0x82/0x8F and a close."""
    async with connected(target.address, "invalid") as client:
        await client.send(subscribe(1, ("a/#/b", options(0))))
        answer = await client.next()
        if answer.kind == SUBACK:
            assert answer.reasons == [0x8F]
        else:
            assert (answer.kind, answer.reason in (0x81, 0x82, 0x8F)) == (DISCONNECT, True), answer.describe()
            assert await client.closed_by_peer()


async def test_a_retained_message_carries_the_subscription_identifier(target: Target) -> None:
    """MQTT-3.3.4-3: a retained message sent for a subscription carries that subscription's identifier."""
    await retain(target, "sidr/t")
    async with connected(target.address, "sidr") as sub:
        await sub.subscribe(("sidr/#", options(0)), properties=props(subscription_identifier=7))
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.properties.subscription_identifiers) == (b"retained", [7])


@contextlib.asynccontextmanager
async def denying_secret(broker: str, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """The address of a broker whose ACL denies the topics under ``secret/`` to everyone."""
    if broker == "edgemq":
        auth = {"acl": {"rules": [{"permit": "deny", "topics": ["secret/#"]}]}}
        async with running_broker(ephemeral_settings(auth=auth, shutdown_timeout=2.0)) as edgemq:
            yield edgemq.mqtt_address
        return
    (tmp_path / "acl").write_text("topic deny secret/#\ntopic readwrite #\n")
    async with mosquitto_upstream(tmp_path, config=[f"acl_file {tmp_path / 'acl'}"]) as mosquitto:
        yield mosquitto.address


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_subscription_the_acl_denies_gets_0x87(broker: str, tmp_path: Path) -> None:
    """3.9.3: a filter the ACL denies gets SUBACK 0x87 (Not authorized); an allowed one beside it is granted."""
    if broker == "mosquitto":
        pytest.xfail("mosquitto 2.0.11 grants the subscription and checks its acl_file as each message is sent")
    async with denying_secret(broker, tmp_path) as address, connected(address, "curious") as client:
        assert (await client.subscribe(("secret/x", options(1)), ("open/x", options(1)))).reasons == [0x87, 1]
