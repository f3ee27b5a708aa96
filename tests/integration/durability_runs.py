"""The ``edgemq`` command on a store file, stopped hard, and what its clients get back (for
test_crash_durability.py and scripts/durability_soak.py).

A publisher sends numbered QoS 1/2 messages (some retained) pipelined, records which the broker
acknowledged (PUBACK, PUBREC) and has the broker killed after a given number of acks; after a
restart on the same file, a persistent subscriber collects what it gets, acknowledging as a
QoS 2 receiver does (a PUBLISH whose packet id awaits PUBREL is a duplicate, not a delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.mqtt.encoding import encode_connect, encode_puback, encode_pubrec, encode_pubrel, encode_subscribe
from broker.mqtt.framing import encode_publish, parse_publish, remaining_length
from tests.helpers import WAIT
from tests.integration.readme_runs import READY, Output, edgemq_env, run_to_end, spawn, stop
from tests.mqtt_packets import RawClient

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK = 3, 4, 5, 6, 7, 9
DISCONNECT = b"\xe0\x00"
FILLER = b"." * 64  # payload bytes after the number: a commit holds more than a few bytes
END = "t/end"  # the marker published last: everything queued before it has been delivered


def write_conf(directory: Path, store: Path, *, sync: str = "always") -> Path:
    """A configuration file: loopback port 0 for MQTT and the API, the store at ``store``, console log."""
    conf = directory / "edgemq.conf"
    conf.write_text(
        'listeners.tcp.bind = "127.0.0.1:0"\nhttp_server.port = 0\n'
        "mqtt { max_mqueue_len = 1000000, max_mqueue_bytes = 1GB }\nlog.to = [console]\n"
        f'persistence {{ enable = true, path = "{store}", sync = {sync} }}\n'
    )
    return conf


@dataclass
class Edgemq:
    """A running ``edgemq start --conf FILE`` and the addresses it logged."""

    process: asyncio.subprocess.Process
    log: Output
    mqtt: tuple[str, int] = ("", 0)
    api: str = ""  # http://host:port

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` unless the process has already exited."""
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def exit_code(self) -> int:
        """The exit code, once the process has ended and its output is read."""
        async with asyncio.timeout(WAIT * 2):
            code = await self.process.wait()
            await self.log.reader
        return code


@contextlib.asynccontextmanager
async def edgemq(conf: Path, *, file_size_limit: int | None = None) -> AsyncIterator[Edgemq]:
    """``python -m broker start --conf CONF`` once ready; killed and reaped on exit.
    ``file_size_limit``: RLIMIT_FSIZE of the process, SIGXFSZ ignored (a write past it fails with EFBIG)."""
    limit = None if file_size_limit is None else lambda: _limit_file_size(file_size_limit)
    process, log = await spawn("start", "--conf", str(conf), env=edgemq_env(), preexec_fn=limit)
    try:
        running = Edgemq(process, log)
        ready = await log.wait_for(READY.pattern)
        running.mqtt, running.api = (ready[1], int(ready[2])), ready[3]
        yield running
    finally:
        await stop(process, log)


def _limit_file_size(limit: int) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


async def refused_start(conf: Path) -> tuple[int, str]:
    """(exit code, stderr) of ``edgemq start --conf CONF`` expected to stop by itself; killed if it serves."""
    return await run_to_end("start", "--conf", str(conf))


def plan(n: int) -> tuple[str, int, bool]:
    """(topic, qos, retain) of message ``n``: QoS 2 every third, retained every seventh (a topic of its own)."""
    retain = n % 7 == 0
    return (f"t/r/{n}" if retain else "t/s"), (2 if n % 3 == 0 else 1), retain


def payload(n: int) -> bytes:
    return b"%08d" % n + FILLER


def number(data: bytes) -> int:
    """The message number a payload carries."""
    return int(data[:8])


@dataclass
class Burst:
    """What a publisher sent (message numbers, also its packet ids) and which of it was acknowledged."""

    sent: list[int] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    """In the order the acknowledgements came."""

    def retained_acked(self) -> set[str]:
        return {plan(n)[0] for n in self.acked if plan(n)[2]}


async def publish_burst(
    address: tuple[str, int], stop_after: int, stop_broker: Callable[[], None], window: int = 16
) -> Burst:
    """Publish message 1, 2, ... with ``window`` awaiting acknowledgement until the broker closes the
    connection; ``stop_broker`` is called at the ``stop_after``-th acknowledgement."""
    assert stop_after + window + 100 < 65536, "message numbers are packet ids"
    burst = Burst()
    room = asyncio.Semaphore(window)

    async def send_all(client: RawClient) -> None:
        for n in range(1, stop_after + window + 100):
            await room.acquire()
            topic, qos, retain = plan(n)
            burst.sent.append(n)
            await client.send(encode_publish(topic, payload(n), qos=qos, packet_id=n, retain=retain))

    async with RawClient.open(address) as client:
        assert await client.connack(encode_connect("burst-publisher")) == (0, 0)
        sender = asyncio.create_task(send_all(client))
        try:
            while True:
                try:
                    first, body = await client.read_packet(timeout=WAIT)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break  # the broker is gone
                if first >> 4 in (PUBACK, PUBREC):
                    burst.acked.append(struct.unpack("!H", body)[0])
                    room.release()
                    if len(burst.acked) == stop_after:
                        stop_broker()
                    if first >> 4 == PUBREC:
                        with contextlib.suppress(ConnectionError):
                            await client.send(encode_pubrel(burst.acked[-1]))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    assert len(burst.acked) >= stop_after, f"the broker closed after {len(burst.acked)} acknowledgements"
    return burst


@dataclass
class Receiver:
    """A persistent subscriber's side of its session: kept across its connections."""

    client_id: str = "durable-sub"
    awaiting_release: set[int] = field(default_factory=set)
    """QoS 2 packet ids received and not released (PUBREC sent, PUBREL not come)."""
    delivered: list[tuple[int, int]] = field(default_factory=list)
    """(message number, qos) handed to the application, in arrival order."""
    packet_ids: dict[int, int] = field(default_factory=dict)
    """The packet id each message number last came with."""
    dups: list[int] = field(default_factory=list)
    """Packet ids of the PUBLISH packets that came with DUP=1."""
    releases: list[int] = field(default_factory=list)
    """Packet ids of the PUBREL packets that came."""
    withhold_pubcomp: set[int] = field(default_factory=set)
    """Packet ids whose PUBREL is not answered."""

    async def subscribe(self, client: RawClient, topic_filter: str = "t/#") -> None:
        """Connect with clean session 0 and subscribe with QoS 2."""
        assert await client.connack(encode_connect(self.client_id, clean_session=False)) == (0, 0)
        await client.send(encode_subscribe(1, (topic_filter, 2)))
        first, body = await client.read_packet()
        assert (first >> 4, body[2:]) == (SUBACK, b"\x02")

    async def take(self, client: RawClient, acknowledge: Callable[[int, int], bool] = lambda n, qos: True) -> int:
        """Read one packet and answer it; returns the number of a PUBLISH (0 for other packets).
        ``acknowledge(n, qos)`` False withholds the PUBACK or PUBREC of message n."""
        first, body = await client.read_packet()
        if first >> 4 == PUBREL:
            (packet_id,) = struct.unpack("!H", body)
            self.releases.append(packet_id)
            self.awaiting_release.discard(packet_id)
            if packet_id not in self.withhold_pubcomp:
                await client.send(struct.pack("!BBH", PUBCOMP << 4, 2, packet_id))
            return 0
        assert first >> 4 == PUBLISH, f"unexpected packet {first:#x}"
        topic, data, qos, _, packet_id = parse_publish(bytes([first]) + remaining_length(len(body)) + body)
        n = number(data) if topic != END else -1
        self.packet_ids[n] = packet_id
        if first & 0x08:
            self.dups.append(packet_id)
        if qos < 2 or packet_id not in self.awaiting_release:
            self.delivered.append((n, qos))
        if qos == 2:  # kept from receipt: a resend before the PUBREL is the same message
            self.awaiting_release.add(packet_id)
        if acknowledge(n, qos):
            await client.send(encode_puback(packet_id) if qos == 1 else encode_pubrec(packet_id))
        return n

    async def collect(self, client: RawClient, expected: set[int], broker: tuple[str, int]) -> None:
        """Receive until every ``expected`` number came, then until the end marker published after them."""
        async with asyncio.timeout(WAIT * 2 + len(expected) / 500):
            seen = {n for n, _ in self.delivered}
            while not expected <= seen:
                seen.add(await self.take(client))
            async with RawClient.open(broker) as marker:
                assert await marker.connack(encode_connect("end-marker")) == (0, 0)
                await marker.send(encode_publish(END, b"end", qos=1, packet_id=1))
                assert (await marker.read_packet())[0] >> 4 == PUBACK
            while await self.take(client) != -1:
                pass
            while self.awaiting_release:  # the marker's and any other PUBREL still to come
                await self.take(client)

    def problems(self, burst: Burst) -> list[str]:
        """What breaks the promise: acknowledged and missing, QoS 2 twice, out of order, never sent."""
        numbers = [n for n, _ in self.delivered if n != -1]
        found: list[str] = []
        if missing := sorted(set(burst.acked) - set(numbers)):
            found.append(f"acknowledged, never delivered: {missing}")
        twice = sorted(n for n, count in Counter(n for n, qos in self.delivered if qos == 2).items() if count > 1)
        if twice:
            found.append(f"QoS 2 delivered more than once: {twice}")
        firsts = list(dict.fromkeys(numbers))
        if firsts != sorted(firsts):
            found.append(f"out of publish order: {firsts}")
        if unknown := sorted(set(numbers) - set(burst.sent)):
            found.append(f"delivered, never sent: {unknown}")
        return found


async def retained_topics(address: tuple[str, int], expected: set[str]) -> set[str]:
    """The topics of the retained messages a new subscriber to t/r/# gets, read until ``expected`` came
    (or the wait ended: then what came)."""
    seen: set[str] = set()
    async with RawClient.open(address) as client:
        assert await client.connack(encode_connect("retained-reader")) == (0, 0)
        await client.send(encode_subscribe(1, ("t/r/#", 0)))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT):
                while not expected <= seen:
                    first, body = await client.read_packet()
                    if first >> 4 == PUBLISH:
                        seen.add(parse_publish(bytes([first]) + remaining_length(len(body)) + body)[0])
    return seen


async def crash_round(conf: Path, stop_after: int, sig: signal.Signals = signal.SIGKILL) -> tuple[Burst, list[str]]:
    """One round: an offline persistent subscriber, a burst stopped by ``sig`` at its ``stop_after``-th
    acknowledgement, a restart on the same file; returns the burst and every broken promise."""
    receiver = Receiver()
    async with edgemq(conf) as broker:
        async with RawClient.open(broker.mqtt) as client:
            await receiver.subscribe(client)
            await client.send(DISCONNECT)
        await broker.log.wait_for(f"client disconnected: client_id={receiver.client_id} ")
        burst = await publish_burst(broker.mqtt, stop_after, lambda: broker.signal(sig))
        code = await broker.exit_code()
    problems = [] if code == {signal.SIGKILL: -9, signal.SIGTERM: 0}[sig] else [f"exit code {code} after {sig.name}"]
    async with edgemq(conf) as broker, RawClient.open(broker.mqtt) as client:
        session_present, _ = await client.connack(encode_connect(receiver.client_id, clean_session=False))
        if session_present != 1:
            problems.append("session present 0 after the restart")
        try:
            await receiver.collect(client, set(burst.acked), broker.mqtt)
        except TimeoutError:
            problems.append("the subscriber's messages stopped coming before the end marker")
        problems += receiver.problems(burst)
        if missing := burst.retained_acked() - await retained_topics(broker.mqtt, burst.retained_acked()):
            problems.append(f"retained, acknowledged, not restored: {sorted(missing)}")
    return burst, problems


def error_lines(lines: list[str], path: Path) -> list[str]:
    """The ERROR lines of a log that name ``path``."""
    return [line for line in lines if re.search(r"\bERROR\b", line) and str(path) in line]
