"""MQTT 5 bridge corner cases against a scripted upstream (tests/scripted_upstream.py): what mosquitto 2.0
does not show on demand (a DISCONNECT with a reason, a Server Keep Alive, a PUBREC refusing a message)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from broker.bridges.bridge import Bridge
from broker.bridges.link import LinkOptions
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties, encode_properties
from tests.integration.bridge_runs import watching
from tests.scripted_upstream import PUBLISH, PUBREC, Conn, FakeUpstream

pytestmark = pytest.mark.anyio

WAIT = 5.0
PINGREQ, DISCONNECT = 12, 14


def connack_v5(**properties: int | str) -> bytes:
    """An accepting MQTT 5 CONNACK (no session present) with ``properties``."""
    body = b"\x00\x00" + encode_properties(Properties(dict(properties)))
    return bytes((0x20, len(body))) + body


async def nothing(
    topic: str, payload: bytes, qos: int, retain: bool, *, properties: MessageProperties | None = None
) -> None:
    """The local publish of a bridge whose upstream sends nothing."""


def v5_bridge(port: int, keepalive: int = 0) -> Bridge:
    """MQTT 5 bridge "up" to the scripted upstream on ``port``, with max_inflight 10."""
    options = LinkOptions("127.0.0.1", port, "gw", None, None, keepalive, False, None, proto_ver=5)
    return Bridge(
        "up",
        f"mqtt-tcp://127.0.0.1:{port}",
        options,
        subscriptions=[],
        receive=nothing,
        journal=None,
        max_queued=100,
        max_inflight=10,
    )


@contextlib.asynccontextmanager
async def running(b: Bridge) -> AsyncIterator[None]:
    task = asyncio.create_task(b.run())
    try:
        yield
    finally:
        await b.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_disconnect_from_the_upstream_ends_the_link_with_its_reason_code_and_string() -> None:
    """DISCONNECT 0x8B with a reason string: the link's end is logged with both."""

    async def script(conn: Conn, n: int) -> None:
        await conn.packet()  # CONNECT
        conn.send(connack_v5())
        if n == 1:
            reason = b"\x8b" + encode_properties(Properties({"reason_string": "maintenance"}))
            conn.send(bytes((DISCONNECT << 4, len(reason))) + reason)
        await conn.until_closed()

    async with FakeUpstream(script) as up:
        with watching() as log:
            async with running(v5_bridge(up.port)):
                lost = await log.wait_for("link to .* lost")
    assert lost.endswith("lost: disconnected by the upstream: 0x8B server shutting down (maintenance) (0 queued)")


async def test_the_server_keep_alive_replaces_the_bridges_own() -> None:
    """A bridge without keep-alive pings an upstream whose CONNACK sets Server Keep Alive 1 (3.2.2-21)."""
    pinged: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def script(conn: Conn, n: int) -> None:
        await conn.packet()  # CONNECT
        conn.send(connack_v5(server_keep_alive=1))
        sent = await conn.packet(timeout=WAIT)
        pinged.set_result(sent.kind if sent is not None else None)
        await conn.until_closed()

    async with FakeUpstream(script) as up, running(v5_bridge(up.port, keepalive=0)):
        assert await asyncio.wait_for(pinged, WAIT + 1) == PINGREQ


async def test_a_pubrec_refusing_a_message_ends_its_exchange_and_frees_its_place() -> None:
    """Receive Maximum 1: a PUBREC 0x83 drops the message (no PUBREL) and the next message is sent."""
    second: asyncio.Future[tuple[int, bytes] | None] = asyncio.get_running_loop().create_future()

    async def script(conn: Conn, n: int) -> None:
        await conn.packet()  # CONNECT
        conn.send(connack_v5(receive_maximum=1))
        first = await conn.packet()
        assert first is not None
        assert first.kind == PUBLISH
        conn.send(bytes((PUBREC << 4, 3)) + first.packet_id + b"\x83")  # implementation specific error
        after = await conn.packet()
        second.set_result((after.kind, after.body) if after is not None else None)
        await conn.until_closed()

    async with FakeUpstream(script) as up:
        b = v5_bridge(up.port)
        b.enqueue("t", b"refused", 2, False)
        b.enqueue("t", b"next", 2, False)
        async with running(b):
            answer = await asyncio.wait_for(second, WAIT)
    assert answer is not None
    kind, body = answer
    assert kind == PUBLISH
    assert body.endswith(b"next")
    assert b.stats().dropped == 1


async def test_a_message_past_its_expiry_is_dropped_and_counted_not_sent() -> None:
    """A queued message whose expiry passed is not sent upstream; it is counted as dropped."""
    first: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

    async def script(conn: Conn, n: int) -> None:
        await conn.packet()  # CONNECT
        conn.send(connack_v5())
        sent = await conn.packet()
        first.set_result(sent.body if sent is not None else None)
        await conn.until_closed()

    async with FakeUpstream(script) as up:
        b = v5_bridge(up.port)
        b.enqueue("t", b"expired", 1, False, MessageProperties(b"", time.time() - 1))
        b.enqueue("t", b"fresh", 1, False, MessageProperties(b"", time.time() + 3600))
        async with running(b):
            body = await asyncio.wait_for(first, WAIT)
    assert body is not None
    assert body.endswith(b"fresh")
    assert b.stats().dropped == 1


async def test_a_publish_with_a_topic_alias_the_bridge_did_not_allow_ends_the_link() -> None:
    """The bridge allows no topic aliases (3.3.2.3.4): a PUBLISH with one ends the link, saying why."""

    async def script(conn: Conn, n: int) -> None:
        await conn.packet()  # CONNECT
        conn.send(connack_v5())
        if n == 1:
            body = b"\x00\x01t" + encode_properties(Properties({"topic_alias": 1})) + b"payload"
            conn.send(bytes((PUBLISH << 4, len(body))) + body)
        await conn.until_closed()

    async with FakeUpstream(script) as up:
        with watching() as log:
            async with running(v5_bridge(up.port)):
                lost = await log.wait_for("link to .* lost")
    assert "malformed packet from the upstream: PUBLISH with a topic alias" in lost
