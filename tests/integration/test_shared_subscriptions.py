"""edgemq's shared subscriptions beyond what mosquitto checks too: malformed and switched-off
filters, the ACL on the shared filter, members offline, the listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mqtt.encoding import encode_connect, encode_subscribe
from broker.mqtt.shared import SharedGroup, split_shared
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


def test_split_shared_reads_name_and_filter() -> None:
    """$share/<name>/<filter> splits at the first / after the name; other filters are not shared."""
    assert split_shared("$share/g/a/+/#") == ("g", "a/+/#")
    assert split_shared("a/b") is None
    assert split_shared("$SYS/#") is None
    for malformed in ("$share/g", "$share/g/", "$share//a", "$share/g+/a", "$share/#/a"):
        with pytest.raises(ValueError, match="malformed"):
            split_shared(malformed)


def test_round_robin_prefers_connected_members() -> None:
    """Members take turns; an offline member is skipped while another is connected."""
    group = SharedGroup({"a": 1, "b": 1, "c": 0})
    online = {"a", "c"}
    picks = [group.pick(online.__contains__) for _ in range(4)]
    assert picks == [("a", 1), ("c", 0), ("a", 1), ("c", 0)]
    assert group.pick(lambda _: False) is not None  # nobody connected: still one member


async def test_malformed_or_switched_off_shared_filters_are_refused() -> None:
    """SUBACK 0x80 for a malformed shared filter, and for any with mqtt.shared_subscriptions = false."""
    for options, filters, codes in (
        ({}, [("$share/g", 1), ("$share//x", 1), ("$share/g/x", 1)], b"\x80\x80\x01"),
        ({"shared_subscriptions": False}, [("$share/g/x", 1)], b"\x80"),
    ):
        async with (
            running_broker(ephemeral_settings(mqtt=options)) as broker,
            RawClient.open(broker.mqtt_address) as raw,
        ):
            assert await raw.connack(encode_connect("s")) == (0, 0)
            await raw.send(encode_subscribe(1, *filters))
            assert await raw.read_packet() == (0x90, b"\x00\x01" + codes)


async def test_the_acl_judges_the_shared_filter() -> None:
    """A deny rule on secret/# also refuses $share/g/secret/#: the share prefix does not get round the ACL."""
    rules = [{"permit": "deny", "action": "subscribe", "topics": ["secret/#"]}]
    async with (
        running_broker(ephemeral_settings(auth={"acl": {"rules": rules}})) as broker,
        RawClient.open(broker.mqtt_address) as raw,
    ):
        assert await raw.connack(encode_connect("s")) == (0, 0)
        await raw.send(encode_subscribe(1, ("$share/g/secret/#", 1), ("$share/g/open/#", 1)))
        assert await raw.read_packet() == (0x90, b"\x00\x01\x80\x01")


async def test_a_connected_member_is_chosen_over_an_offline_one() -> None:
    """With one member offline (persistent session), every message goes to the connected member."""
    async with running_broker() as broker:
        async with mqtt_client(broker, "away", clean_session=False) as away:
            await away.subscribe("$share/g/t/#", qos=1)
        async with mqtt_client(broker, "here") as here:
            await here.subscribe("$share/g/t/#", qos=1)
            for n in range(4):
                await broker.publish("t/x", str(n).encode(), qos=1)
            assert [(await next_message(here)).payload for _ in range(4)] == [b"0", b"1", b"2", b"3"]
        assert broker.stats().message_drop == 0


async def test_with_no_member_connected_an_offline_member_queues_it() -> None:
    """No member connected: a persistent member's session queues the message and gets it on return."""
    async with running_broker() as broker:
        async with mqtt_client(broker, "away", clean_session=False) as away:
            await away.subscribe("$share/g/t/#", qos=1)
        await broker.publish("t/x", b"kept", qos=1)
        async with mqtt_client(broker, "away", clean_session=False) as back:
            assert (await next_message(back)).payload == b"kept"


async def test_listings_show_the_shared_filter() -> None:
    """The client's subscription list (the shared state, so req 4 and v4) holds $share/g/t/# as written."""
    async with running_broker() as broker, mqtt_client(broker, "m") as member:
        await member.subscribe("$share/g/t/#", qos=1)
        await wait_state(broker, lambda state: state.subscription_index.filters_of("m") == {"$share/g/t/#": 1})
        await member.unsubscribe("$share/g/t/#")
        await wait_state(broker, lambda state: not state.subscription_index.shared)


async def test_a_shared_subscription_survives_a_restart_with_the_store(tmp_path: Path) -> None:
    """A persistent member's shared subscription is read back from the store and routes again."""
    settings = ephemeral_settings(persistence={"enable": True, "path": str(tmp_path / "edgemq.db")})
    async with running_broker(settings) as broker, mqtt_client(broker, "m", clean_session=False) as member:
        await member.subscribe("$share/g/t/#", qos=1)
    async with running_broker(settings) as broker:
        await broker.publish("t/x", b"after", qos=1)
        async with mqtt_client(broker, "m", clean_session=False) as member:
            assert (await next_message(member)).payload == b"after"
