"""Helpers of the bridge fault tests (test_bridge_faults.py, scripts/bridge_soak.py): numbered local
publishers, an upstream collector that checks loss, duplication and order, a TLS subscriber on the
upstream, a watch on the bridge's log, and an ``edgemq`` configuration with a bridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import ssl
import struct
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from broker.mqtt.encoding import encode_connect, encode_subscribe
from broker.mqtt.framing import encode_publish
from tests.helpers import WAIT
from tests.integration.durability_runs import edgemq, write_conf
from tests.integration.test_bridges import SUBACK, UpstreamSubscriber, upstream_subscriber
from tests.link_proxy import LinkProxy
from tests.mqtt_packets import RawClient
from tests.upstream import Upstream, mosquitto_upstream

PUBACK = 4


def numbers_of(payloads: Iterable[bytes]) -> list[int]:
    """The message numbers of numbered payloads, in arrival order."""
    return [int(p) for p in payloads]


@dataclass
class Verdict:
    """What came upstream compared with what had to: missing, duplicated, out of order."""

    missing: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    out_of_order: bool = False
    unknown: list[int] = field(default_factory=list)


def judge(arrived: list[int], required: Iterable[int], sent: Iterable[int]) -> Verdict:
    """Every ``required`` number arrived; duplicates (listed), first arrivals in publish order,
    nothing that was never ``sent``."""
    firsts = list(dict.fromkeys(arrived))
    return Verdict(
        missing=sorted(set(required) - set(arrived)),
        duplicates=sorted(n for n, count in Counter(arrived).items() if count > 1),
        out_of_order=firsts != sorted(firsts),
        unknown=sorted(set(arrived) - set(sent)),
    )


async def collect(subscriber: UpstreamSubscriber, required: Iterable[int], timeout: float = 20.0) -> None:
    """Read (and acknowledge) until every ``required`` number has arrived."""
    wanted = set(required)
    seen = set(numbers_of(subscriber.payloads))
    async with asyncio.timeout(timeout):
        while not wanted <= seen:
            _, payload = await subscriber.next(timeout)
            seen.add(int(payload))


async def read_until_closed(subscriber: UpstreamSubscriber) -> None:
    """Read (and acknowledge) until the upstream closes the connection."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            await subscriber.next(timeout=60.0)


@contextlib.asynccontextmanager
async def tls_subscriber(upstream: Upstream, client_id: str, topic_filter: str) -> AsyncIterator[UpstreamSubscriber]:
    """A subscriber of ``topic_filter`` on a TLS upstream (mosquitto_upstream(tls=True))."""
    context = ssl.create_default_context(cafile=str(upstream.ca_path))
    reader, writer = await asyncio.open_connection(*upstream.address, ssl=context)
    client = RawClient(reader, writer)
    try:
        assert await client.connack(encode_connect(client_id, clean_session=False)) == (0, 0)
        await client.send(encode_subscribe(1, (topic_filter, 1)))
        assert (await client.read_packet())[0] >> 4 == SUBACK
        yield UpstreamSubscriber(client)
    finally:
        await client.close()


class Publisher:
    """Publishes QoS 1 messages 0, 1, 2, ... on ``topic``, one at a time through its PUBACK, until stopped;
    ``acked`` counts the acknowledged ones (numbers 0 to acked - 1)."""

    def __init__(self, address: tuple[str, int], topic: str = "up/seq") -> None:
        self.acked = 0
        self._address, self._topic = address, topic
        self._stopping = False
        self._progress = asyncio.Event()  # set and replaced at each acknowledgement
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async with RawClient.open(self._address) as client:
                assert await client.connack(encode_connect("numbered-publisher")) == (0, 0)
                while not self._stopping:
                    packet_id = self.acked % 65535 + 1
                    await client.send(encode_publish(self._topic, b"%d" % self.acked, qos=1, packet_id=packet_id))
                    assert await client.read_packet() == (PUBACK << 4, struct.pack("!H", packet_id))
                    self.acked += 1
                    self._progress.set()
                    self._progress = asyncio.Event()
        finally:
            self._progress.set()  # a waiter sees the end

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="numbered-publisher")

    async def reached(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` messages were acknowledged in all."""
        async with asyncio.timeout(timeout):
            while self.acked < count:
                assert self._task is not None
                if self._task.done():
                    self._task.result()  # its failure, if it failed
                    raise AssertionError(f"the publisher ended after {self.acked} messages")
                await self._progress.wait()

    async def stop(self) -> int:
        """Stop after the message in progress; the number of acknowledged messages."""
        self._stopping = True
        assert self._task is not None
        await self._task
        return self.acked


async def publish_pipelined(address: tuple[str, int], count: int, topic: str = "up/seq", window: int = 256) -> None:
    """Publish QoS 1 messages 0 .. count - 1 with ``window`` awaiting PUBACK; return once all are acknowledged."""
    assert count < 65535, "packet ids are the message numbers + 1"
    room = asyncio.Semaphore(window)

    async def send_all(client: RawClient) -> None:
        for n in range(count):
            await room.acquire()
            client.writer.write(encode_publish(topic, b"%d" % n, qos=1, packet_id=n + 1))
            if n % 64 == 0:
                await client.writer.drain()
        await client.writer.drain()

    async with RawClient.open(address) as client:
        assert await client.connack(encode_connect("pipelined-publisher")) == (0, 0)
        sender = asyncio.create_task(send_all(client))
        try:
            for n in range(count):
                first, body = await client.read_packet(WAIT)
                assert (first >> 4, body) == (PUBACK, struct.pack("!H", n + 1)), (n, first, body)
                room.release()
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


class LogWatch(logging.Handler):
    """The messages of one logger, with a wait for one that matches."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._grown = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")
        self._grown.set()

    async def wait_for(self, pattern: str, timeout: float = WAIT) -> str:
        """The first message matching ``pattern`` (a regular expression)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for message in self.messages:
                        if re.search(pattern, message):
                            return message
                    self._grown.clear()
                    await self._grown.wait()
        except TimeoutError:
            raise AssertionError(f"no log message matching {pattern!r} within {timeout}s: {self.messages}") from None


@contextlib.contextmanager
def watching(logger: str = "edgemq.bridge") -> Iterator[LogWatch]:
    """A LogWatch on ``logger`` until the block ends."""
    watch = LogWatch()
    target = logging.getLogger(logger)
    target.addHandler(watch)
    try:
        yield watch
    finally:
        target.removeHandler(watch)


def bridge_conf(directory: Path, store: Path, upstream: tuple[str, int]) -> Path:
    """A configuration file for the ``edgemq`` command: a store with sync always, and bridge ``up`` that
    forwards local ``up/#`` to ``edge/#`` at QoS 1 to ``upstream``."""
    conf = write_conf(directory, store)
    host, port = upstream
    with conf.open("a") as text:
        text.write(
            f'bridges.mqtt.up {{\n  server = "mqtt-tcp://{host}:{port}"\n  keepalive = 2\n'
            '  forwards = [ { local_topic = "up/#", remote_topic = "edge/#", qos = 1 } ]\n}\n'
        )
    return conf


UNBOUNDED = ["max_queued_messages 0"]  # mosquitto keeps every message for a subscriber that lags (default: 1000)


@dataclass
class DrainKill:
    """One kill -9 during a drain: the verdict, what arrived before the kill, and the drain's pace."""

    verdict: Verdict
    before_kill: int
    rate: float
    """Messages per second arriving upstream, from the first to the last (both runs, the restart included)."""


async def kill_while_draining(directory: Path, count: int, kill_after: int) -> DrainKill:
    """``count`` QoS 1 messages queued by ``edgemq`` for a refused link; the link passes; the process is
    killed (SIGKILL) once ``kill_after`` arrived upstream and restarted on its store; every message must
    arrive, first arrivals in order."""
    async with (
        mosquitto_upstream(directory, config=UNBOUNDED) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
    ):
        proxy.refuse()
        conf = bridge_conf(directory, directory / "edgemq.db", proxy.address)
        async with edgemq(conf) as broker:
            await publish_pipelined(broker.mqtt, count)
            proxy.restore()
            await collect(cloud, range(kill_after))
            broker.signal(signal.SIGKILL)
            assert await broker.exit_code() == -9
        before_kill = len(cloud.payloads)
        started = asyncio.get_running_loop().time()
        async with edgemq(conf):
            await collect(cloud, range(count), timeout=20.0 + count / 1000)
        elapsed = asyncio.get_running_loop().time() - started
    arrived = numbers_of(cloud.payloads)
    return DrainKill(judge(arrived, range(count), range(count)), before_kill, (len(arrived) - before_kill) / elapsed)
