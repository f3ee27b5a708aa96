"""Conformance checks that need edgemq's own view: $-topics, fairness, bounded queues, shutdown, logs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import select
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import PINGREQ, encode_connect, encode_publish, encode_subscribe
from tests.conformance.test_mqtt311 import MALFORMED
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def blasting(broker: EdgeBroker, topic: str, count: int, size: int = 16) -> AsyncIterator[asyncio.Task[None]]:
    """A client publishing ``count`` QoS 0 messages as fast as the broker takes them, in the background."""
    async with RawClient.open(broker.mqtt_address) as blaster:
        assert await blaster.connack(encode_connect("blaster")) == (0, 0)
        chunk = encode_publish(topic, b"x" * size) * 500

        async def blast() -> None:
            for _ in range(count // 500):
                await blaster.send(chunk)

        task = asyncio.create_task(blast())
        try:
            yield task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_wildcards_do_not_match_dollar_topics(broker: EdgeBroker) -> None:
    """4.7.2: filters starting with a wildcard do not match topics starting with $."""
    async with mqtt_client(broker, "all") as everything, mqtt_client(broker, "sys") as sys_reader:
        await everything.subscribe([("#", 0), ("+/x", 0)])
        await sys_reader.subscribe("$SYS/#")
        await broker.publish("$SYS/x", b"internal")
        assert (await next_message(sys_reader)).payload == b"internal"
        await broker.publish("plain/x", b"public")
        assert (await next_message(everything)).payload == b"public"  # not the $SYS message


async def test_a_blasting_client_does_not_starve_others(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """Fairness: while one client publishes as fast as it can, others and the admin API are served."""
    async with mqtt_client(broker, "steady") as steady, blasting(broker, "noise", 200_000):
        await steady.subscribe("steady/echo")
        for n in range(20):
            async with asyncio.timeout(WAIT):
                await steady.publish("steady/echo", str(n).encode())
                assert (await next_message(steady)).payload == str(n).encode()
                assert (await api.post("/v1", json={"req": 2, "seq": n})).status_code == 200


async def test_queue_of_a_client_that_does_not_read_is_bounded() -> None:
    """Per-client queues hold at most max_mqueue_len messages; the overflow counts in message_drop."""
    async with (
        running_broker(ephemeral_settings(mqtt={"max_mqueue_len": 10})) as broker,
        RawClient.open(broker.mqtt_address) as stuck,
    ):
        assert await stuck.connack(encode_connect("stuck")) == (0, 0)
        await stuck.send(encode_subscribe(1, ("flood", 0)))
        await stuck.read_packet()  # SUBACK; from now on it reads nothing
        async with blasting(broker, "flood", 5_000, size=2_000) as blast:
            await wait_state(broker, lambda s: s.stats().message_drop > 0)
            blast.cancel()
        stats = broker.stats()
        assert stats.message_out == stats.message_in  # every message was routed to the one subscription


async def test_shutdown_with_a_backlog_is_bounded() -> None:
    """Stopping while a client floods the broker finishes within the configured time limit."""
    broker = EdgeBroker(ephemeral_settings(shutdown_timeout=1.0))
    await broker.start()
    try:
        async with mqtt_client(broker, "sub") as sub, blasting(broker, "flood", 200_000, size=100):
            await sub.subscribe("flood")
            await next_message(sub)
            async with asyncio.timeout(1.0 * 3 + 2):
                await broker.stop()
    finally:
        await broker.stop()


@pytest.mark.parametrize("case", MALFORMED)
async def test_client_faults_are_not_logged_as_errors(
    broker: EdgeBroker, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """A malformed client never produces an ERROR log record (or a traceback)."""
    caplog.set_level(logging.INFO)
    async with RawClient.open(broker.mqtt_address) as bad:
        if case != "garbage":
            await bad.connack(encode_connect("bad"))
        await bad.send(MALFORMED[case])
        assert await bad.closed_by_peer()
    await wait_state(broker, lambda s: s.client("bad") is None)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_full_queue_drops_qos0_before_qos1() -> None:
    """When a client's queue is full, a QoS 1 message takes the place of a waiting QoS 0 one."""
    async with (
        running_broker(ephemeral_settings(mqtt={"max_mqueue_len": 10})) as broker,
        RawClient.open(broker.mqtt_address) as stuck,
    ):
        assert await stuck.connack(encode_connect("stuck")) == (0, 0)
        await stuck.send(encode_subscribe(1, ("flood", 0), ("important", 1)))
        await stuck.read_packet()  # SUBACK; it reads nothing more for a while
        async with blasting(broker, "flood", 5_000, size=2_000) as blast:
            await wait_state(broker, lambda s: s.stats().message_drop > 0)
            blast.cancel()
        dropped = broker.stats().message_drop
        await broker.publish("important", b"keep me", qos=1)
        assert broker.stats().message_drop == dropped + 1  # a QoS 0 copy made room
        async with asyncio.timeout(WAIT):
            while True:
                first, body = await stuck.read_packet()
                if first & 0xF6 == 0x32 and b"important" in body:
                    break


async def test_unacknowledged_qos1_copies_are_bounded() -> None:
    """A client that reads but never sends PUBACK holds at most max_mqueue_len QoS 1 copies in flight."""
    async with (
        running_broker(ephemeral_settings(mqtt={"max_mqueue_len": 10})) as broker,
        RawClient.open(broker.mqtt_address) as lazy,
    ):
        assert await lazy.connack(encode_connect("lazy")) == (0, 0)
        await lazy.send(encode_subscribe(1, ("work", 1)))
        await lazy.read_packet()  # SUBACK
        for n in range(15):
            await broker.publish("work", str(n).encode(), qos=1)
        payloads = [(await lazy.read_packet())[1][8:] for _ in range(10)]  # after topic "work" and packet id
        assert payloads == [str(n).encode() for n in range(10)]
        assert broker.stats().message_drop == 5
        with pytest.raises(TimeoutError):
            await lazy.read_packet(timeout=0.3)  # the 5 beyond the limit were dropped, not queued


async def test_in_flight_window_holds_across_reconnects() -> None:
    """Copies resent to a resumed session count against max_mqueue_len: a client that never acknowledges is bounded."""
    async with running_broker(ephemeral_settings(mqtt={"max_mqueue_len": 10})) as broker:
        async with RawClient.open(broker.mqtt_address) as lazy:
            assert await lazy.connack(encode_connect("lazy", clean_session=False)) == (0, 0)
            await lazy.send(encode_subscribe(1, ("work", 1)))
            await lazy.read_packet()  # SUBACK
            for n in range(10):
                await broker.publish("work", str(n).encode(), qos=1)
            for _ in range(10):
                await lazy.read_packet()  # never acknowledged
        await wait_state(broker, lambda s: (c := s.client("lazy")) is not None and not c.connected)
        async with RawClient.open(broker.mqtt_address) as lazy:
            assert await lazy.connack(encode_connect("lazy", clean_session=False)) == (1, 0)
            resent = [(await lazy.read_packet())[0] for _ in range(10)]
            assert all(first & 0x08 for first in resent)  # DUP 1
            for n in range(5):
                await broker.publish("work", f"new {n}".encode(), qos=1)
            assert broker.stats().message_drop == 5
            with pytest.raises(TimeoutError):
                await lazy.read_packet(timeout=0.3)


async def test_packets_leave_in_the_order_they_were_made(broker: EdgeBroker) -> None:
    """Copies and acknowledgements buffered in a loop turn go out before a later reply (here PINGRESP)."""
    async with RawClient.open(broker.mqtt_address) as echo:
        assert await echo.connack(encode_connect("echo")) == (0, 0)
        await echo.send(encode_subscribe(1, ("echo/t", 1)))
        await echo.read_packet()  # SUBACK
        await echo.send(encode_publish("echo/t", b"me", qos=1, packet_id=3) + PINGREQ)  # PUBLISH, PINGREQ
        kinds = [(await echo.read_packet())[0] & 0xF0 for _ in range(3)]
        assert kinds == [0x30, 0x40, 0xD0]  # the copy, the PUBACK, the PINGRESP


async def test_a_burst_to_a_reading_client_is_not_dropped() -> None:
    """A client that reads keeps every copy of a burst larger than one write (no drop from a full turn)."""
    async with (
        running_broker(ephemeral_settings(mqtt={"max_mqueue_len": 10})) as broker,
        RawClient.open(broker.mqtt_address) as reader,
        RawClient.open(broker.mqtt_address) as burst,
    ):
        assert await reader.connack(encode_connect("reader")) == (0, 0)
        await reader.send(encode_subscribe(1, ("burst", 0)))
        await reader.read_packet()  # SUBACK
        assert await burst.connack(encode_connect("burst")) == (0, 0)
        await burst.send(encode_publish("burst", b"x" * 2_000) * 500)
        for _ in range(500):
            assert (await reader.read_packet())[0] & 0xF0 == 0x30
        assert broker.stats().message_drop == 0


async def test_a_very_deep_filter_does_not_break_delivery(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A filter 3 000 levels deep is served like any other, over MQTT and HTTP: its subscribers and
    "#" subscribers get the message and the publisher stays connected (mosquitto refuses such depth)."""
    deep = "/".join(["d"] * 3000)
    async with mqtt_client(broker, "deep-sub") as deep_sub, mqtt_client(broker, "all-sub") as everything:
        await deep_sub.subscribe(deep)
        await everything.subscribe("#")
        async with mqtt_client(broker, "deep-pub") as pub:
            await pub.publish(deep, b"over mqtt", qos=1)
            await pub.publish("shallow", b"still connected", qos=1)
        answer = await api.post("/v4/mqtt/publish", json={"topic": deep, "payload": "over http"})
        assert answer.json() == {"code": 0}
        assert [(await next_message(deep_sub)).payload for _ in range(2)] == [b"over mqtt", b"over http"]
        received = [(await next_message(everything)).payload for _ in range(3)]
        assert received == [b"over mqtt", b"still connected", b"over http"]


async def _open_idle(address: tuple[str, int], idle: list[socket.socket], count: int) -> None:
    """Add ``count`` connections that never send anything to ``idle``, each accepted by the broker
    (the round trip of a later CONNECT shows that: a listener accepts in order)."""
    loop = asyncio.get_running_loop()
    for _ in range(count):
        sock = socket.socket()
        idle.append(sock)
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    async with RawClient.open(address) as last:
        assert await last.connack(encode_connect("last")) == (0, 0)


@pytest.mark.parametrize("action", ["stop", "restart"])
async def test_connections_without_connect_do_not_delay_stop_or_restart(action: str) -> None:
    """Stop and restart ask every connection to end, also the 2 000 that never sent CONNECT: they
    finish well before connect_timeout or shutdown_timeout (30 s each here)."""
    broker = EdgeBroker(ephemeral_settings(mqtt={"connect_timeout": 30.0}, shutdown_timeout=30.0))
    await broker.start()
    idle: list[socket.socket] = []
    try:
        await _open_idle(broker.mqtt_address, idle, 2000)
        async with asyncio.timeout(WAIT):
            await (broker.stop() if action == "stop" else broker.restart())
    finally:
        for sock in idle:
            sock.close()
        await broker.stop()


async def test_listen_backlog_holds_a_burst_of_connects() -> None:
    """listeners.tcp.backlog (1024 by default, not asyncio's 100): while the broker is busy, the
    kernel completes 600 simultaneous connects instead of leaving most of them unanswered."""
    async with running_broker() as broker:
        sockets = [socket.socket() for _ in range(600)]
        try:
            for sock in sockets:  # the event loop is held here, so nothing is accepted meanwhile
                sock.setblocking(False)
                assert sock.connect_ex(broker.mqtt_address) in (0, errno.EINPROGRESS)
            poller = select.poll()
            for sock in sockets:
                poller.register(sock, select.POLLOUT)
            connected: set[int] = set()
            deadline = time.monotonic() + 2.0  # SYNs over the backlog are dropped: they would stay pending
            while len(connected) < len(sockets) and (left := deadline - time.monotonic()) > 0:
                connected.update(fd for fd, _ in poller.poll(left * 1000))
            assert len(connected) == len(sockets)
        finally:
            for sock in sockets:
                sock.close()


async def test_queue_of_a_client_that_does_not_read_is_bounded_in_bytes() -> None:
    """A subscriber that never reads pins at most mqtt.max_mqueue_bytes of queued payloads: of 60
    QoS 1 messages of 1 MB, all beyond that (and what the sockets hold) count as dropped."""
    settings = ephemeral_settings(mqtt={"max_mqueue_bytes": 2 * 1024 * 1024, "max_packet_size": 2 * 1024 * 1024})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as stuck:
        assert await stuck.connack(encode_connect("stuck")) == (0, 0)
        await stuck.send(encode_subscribe(1, ("big", 1)))
        await stuck.read_packet()  # SUBACK; from now on it reads nothing
        async with mqtt_client(broker, "pub") as pub:
            for _ in range(60):
                await pub.publish("big", b"x" * 1024 * 1024, qos=1)  # acknowledged once routed
        stats = broker.stats()
        assert stats.message_out == 60
        assert stats.message_drop >= 40  # 2 queued, the rest of the 20 in kernel and transport buffers at most


async def test_offline_queue_is_bounded_in_bytes() -> None:
    """An offline persistent session queues QoS 1 messages up to mqtt.max_mqueue_bytes; the rest count as dropped."""
    settings = ephemeral_settings(mqtt={"max_mqueue_bytes": 3000})
    async with running_broker(settings) as broker:
        async with mqtt_client(broker, "away", clean_session=False) as away:
            await away.subscribe("news", qos=1)
        await wait_state(broker, lambda s: (c := s.client("away")) is not None and not c.connected)
        for n in range(10):
            await broker.publish("news", bytes([n]) * 1000, qos=1)
        assert broker.stats().message_drop == 7
        async with mqtt_client(broker, "away", clean_session=False) as away:
            assert [(await next_message(away)).payload[0] for _ in range(3)] == [0, 1, 2]


async def test_written_qos0_copies_leave_no_phantom_room_in_the_byte_bound() -> None:
    """QoS 0 copies already written free their bytes once: after 200 KB of them went to a client
    that never acknowledges a pending QoS 1 copy, its QoS 1 copies still stop at max_mqueue_bytes."""
    settings = ephemeral_settings(mqtt={"max_mqueue_bytes": 64 * 1024})
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as lazy:
        await broker.publish("t/retained", b"r", qos=1, retain=True, client_id=None)
        assert await lazy.connack(encode_connect("lazy")) == (0, 0)
        await lazy.send(encode_subscribe(1, ("t/#", 1)))
        received = 0
        arrived = asyncio.Event()

        async def read_all() -> None:  # reads everything, acknowledges nothing
            nonlocal received
            while True:
                await lazy.read_packet(timeout=60)
                received += 1
                arrived.set()

        async def until_received(count: int) -> None:
            async with asyncio.timeout(WAIT):
                while received < count:
                    arrived.clear()
                    await arrived.wait()

        reader = asyncio.create_task(read_all())
        try:
            await until_received(2)  # SUBACK and the retained copy, never acknowledged
            for batch in range(10):  # 20 KB at a time, each written before the next
                for _ in range(20):
                    await broker.publish("t/q0", b"x" * 1024, qos=0, client_id=None)
                await until_received(2 + 20 * (batch + 1))
            dropped = broker.stats().message_drop
            for _ in range(20):
                await broker.publish("t/q1", b"y" * 10 * 1024, qos=1, client_id=None)
            assert broker.stats().message_drop - dropped >= 13  # at most 64 KB of 10 KB copies admitted
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
