"""Shared subscriptions ``$share/<name>/<filter>`` (MQTT 5.0 section 4.8.2) for MQTT 3.1.1
clients, checked on edgemq and on mosquitto (which offers them to 3.1.1 clients too)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from tests.conformance.conftest import Target
from tests.helpers import WAIT, next_message

pytestmark = pytest.mark.anyio

COUNT = 10


def client(target: Target, client_id: str, **options: object) -> aiomqtt.Client:
    return aiomqtt.Client(*target.address, identifier=client_id, **options)  # type: ignore[arg-type]


async def payloads_until(clients: list[aiomqtt.Client], total: int) -> list[list[bytes]]:
    """What each client received, once they received ``total`` messages between them."""
    received: list[list[bytes]] = [[] for _ in clients]
    complete = asyncio.Event()

    async def read(index: int) -> None:
        async for message in clients[index].messages:
            assert isinstance(message.payload, bytes)
            received[index].append(message.payload)
            if sum(map(len, received)) >= total:
                complete.set()

    readers = [asyncio.create_task(read(i)) for i in range(len(clients))]
    try:
        async with asyncio.timeout(WAIT):
            await complete.wait()
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return received


async def publish_all(target: Target, topic: str) -> None:
    async with client(target, "publisher") as publisher:
        for n in range(COUNT):
            await publisher.publish(topic, str(n).encode(), qos=1)


async def test_each_message_goes_to_one_member_of_the_group(target: Target) -> None:
    """MQTT-4.8.2: the members of one share name split the messages: each once, both get some."""
    async with client(target, "m1") as m1, client(target, "m2") as m2:
        await m1.subscribe("$share/workers/jobs/#", qos=1)
        await m2.subscribe("$share/workers/jobs/#", qos=1)
        await publish_all(target, "jobs/a")
        first, second = await payloads_until([m1, m2], COUNT)
    assert sorted(first + second, key=int) == [str(n).encode() for n in range(COUNT)]
    assert first, "the first member got nothing"
    assert second, "the second member got nothing"


async def test_a_plain_subscriber_and_each_group_get_every_message(target: Target) -> None:
    """A plain subscription beside the group gets every message; another share name gets its own copies."""
    async with client(target, "plain") as plain, client(target, "a1") as a1, client(target, "b1") as b1:
        await plain.subscribe("jobs/#", qos=1)
        await a1.subscribe("$share/a/jobs/#", qos=1)
        await b1.subscribe("$share/b/jobs/#", qos=1)
        await publish_all(target, "jobs/x")
        got = await payloads_until([plain, a1, b1], 3 * COUNT)
    assert [len(each) for each in got] == [COUNT, COUNT, COUNT]


async def test_a_shared_subscription_gets_no_retained_message(target: Target) -> None:
    """MQTT 5.0 3.3.1.3: retained messages are sent when a non-shared subscription is made only."""
    if target.name == "mosquitto":
        pytest.xfail("mosquitto 2 sends retained messages to a new shared subscription")
    async with client(target, "holder") as holder:
        await holder.publish("kept/1", b"retained", qos=1, retain=True)
        async with client(target, "member") as member:
            await member.subscribe("$share/g/kept/#", qos=1)
            await holder.publish("kept/1", b"live", qos=1)
            assert (await next_message(member)).payload == b"live"
        await holder.publish("kept/1", b"", qos=1, retain=True)
