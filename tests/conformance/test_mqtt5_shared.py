"""Shared subscriptions ``$share/<name>/<filter>`` for MQTT 5 clients (4.8.2), alone and mixed with
3.1.1 members, and SUBACK 0x9E when the broker does not offer them.

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from tests.conformance.conftest import StartTarget, Target
from tests.helpers import WAIT
from tests.mqtt5_packets import PUBLISH, V5Client, connected, options

pytestmark = pytest.mark.anyio

COUNT = 10


async def publish_all(target: Target, topic: str) -> None:
    """Publish "0".."COUNT-1" to ``topic`` at QoS 1."""
    async with connected(target.address, "shared-publisher") as publisher:
        for n in range(COUNT):
            await publisher.publish_acked(topic, str(n).encode(), packet_id=n + 1)


class Split:
    """What each member of a share group received, complete once COUNT messages arrived between them."""

    def __init__(self, members: int) -> None:
        self.received: list[list[bytes]] = [[] for _ in range(members)]
        self.complete = asyncio.Event()

    def add(self, member: int, payload: bytes) -> None:
        self.received[member].append(payload)
        if sum(map(len, self.received)) >= COUNT:
            self.complete.set()

    async def read_v5(self, member: int, client: V5Client) -> None:
        while True:
            self.add(member, (await client.expect(PUBLISH, timeout=2 * WAIT)).payload)

    async def read_v311(self, member: int, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            self.add(member, message.payload)

    async def wait(self, readers: list[asyncio.Task[None]]) -> None:
        """Wait until the messages arrived (a reader that fails fails the test), then stop the readers."""
        waiter = asyncio.create_task(self.complete.wait())
        try:
            done, _ = await asyncio.wait([waiter, *readers], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            assert self.complete.is_set(), f"only these arrived: {self.received}"
        finally:
            for task in (waiter, *readers):
                task.cancel()
            await asyncio.gather(waiter, *readers, return_exceptions=True)

    def check(self) -> None:
        """Each message arrived once, and each member got some."""
        everything = sorted((payload for member in self.received for payload in member), key=int)
        assert everything == [str(n).encode() for n in range(COUNT)]
        assert all(self.received), f"a member got nothing: {self.received}"


async def test_v5_members_of_a_group_split_the_messages(target: Target) -> None:
    """4.8.2: each message goes to one v5 member of the share group; both members get some."""
    async with connected(target.address, "m1") as m1, connected(target.address, "m2") as m2:
        for member in (m1, m2):
            assert (await member.subscribe(("$share/workers/jobs/#", options(0)))).reasons == [0]
        await publish_all(target, "jobs/a")
        split = Split(2)
        await split.wait([asyncio.create_task(split.read_v5(n, m)) for n, m in enumerate((m1, m2))])
    split.check()


async def test_v5_and_311_members_share_one_group(target: Target) -> None:
    """4.8.2: a share group with a v5 and a 3.1.1 member gives each message to one of them, both get some."""
    async with (
        connected(target.address, "v5-member") as v5,
        aiomqtt.Client(*target.address, identifier="v311-member") as v311,
    ):
        assert (await v5.subscribe(("$share/mixed/jobs/#", options(0)))).reasons == [0]
        await v311.subscribe("$share/mixed/jobs/#", qos=0)
        await publish_all(target, "jobs/b")
        split = Split(2)
        await split.wait([asyncio.create_task(split.read_v5(0, v5)), asyncio.create_task(split.read_v311(1, v311))])
    split.check()


async def test_suback_0x9e_when_shared_subscriptions_are_off(start_target: StartTarget) -> None:
    """3.2.2.3.17, 3.9.3: with shared subscriptions off, CONNACK says so and a $share filter gets SUBACK 0x9E."""
    async with start_target(shared_subscriptions=False) as target:
        if target.name == "mosquitto":
            pytest.skip("mosquitto has no option to turn shared subscriptions off")
        async with V5Client.open(target.address) as client:
            assert (await client.connect("no-share")).properties.get("shared_subscription_available") == 0
            assert (await client.subscribe(("$share/g/t", options(0)), ("plain/t", options(0)))).reasons == [0x9E, 0]


async def test_messages_in_flight_to_a_member_that_leaves_go_to_another(target: Target) -> None:
    """4.8.2: QoS 1 messages unacknowledged by a member whose session ends are sent to another member."""
    if target.name == "mosquitto":
        pytest.xfail("mosquitto 2.0.11 drops the messages in flight to a member that leaves (the standard: SHOULD)")
    async with connected(target.address, "leaver") as leaver, connected(target.address, "stayer") as stayer:
        for member in (leaver, stayer):
            await member.subscribe(("$share/g/jobs/#", options(1)))
        await publish_all(target, "jobs/c")
        split = Split(2)
        await split.wait([asyncio.create_task(split.read_v5(n, m)) for n, m in enumerate((leaver, stayer))])
        unacknowledged = set(split.received[0])
        assert unacknowledged, "the leaving member got nothing to leave behind"
        leaver.abort()
        got = set(split.received[1])
        while not unacknowledged <= got:
            got.add((await stayer.expect(PUBLISH)).payload)
