"""Slow and excess admin connections are bounded (http_server.request_timeout, keepalive_timeout,
max_connections) and MQTT keeps serving meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from broker import BrokerSettings, ConfigSource, EdgeBroker
from tests.api.http_support import BASIC_ADMIN, loud_records, parse_answer, read_answer, read_one_answer
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker

pytestmark = pytest.mark.anyio

NOTHING = b""
HALF_HEADER = b"GET /api/v4/brokers HTTP/1.1\r\nHost: edg"
HALF_BODY = b"POST /api/v1 HTTP/1.1\r\nHost: edgemq\r\nContent-Length: 100\r\n" + BASIC_ADMIN + b'\r\n{"req": 2'
SLOW = [NOTHING, HALF_HEADER, HALF_BODY]


@contextlib.asynccontextmanager
async def open_sockets(
    broker: EdgeBroker, count: int, sending: list[bytes]
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """``count`` connections to the admin port, the i-th having sent ``sending[i % len(sending)]``."""
    sockets = []
    try:
        for i in range(count):
            reader, writer = await asyncio.open_connection(*broker.http_address)
            sockets.append((reader, writer))
            writer.write(sending[i % len(sending)])
        yield sockets
    finally:
        for _, writer in sockets:
            writer.close()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection (a reset counts as closed)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


async def test_connections_over_the_cap_get_503_at_once(broker_with_cap: EdgeBroker) -> None:
    """Over max_connections, a new connection is answered 503 with a JSON message and closed."""
    async with open_sockets(broker_with_cap, 3, [NOTHING]):
        reader, writer = await asyncio.open_connection(*broker_with_cap.http_address)
        try:
            async with asyncio.timeout(WAIT):
                answer = parse_answer(await reader.read())
        finally:
            writer.close()
    assert answer.status == 503
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == 102
    assert "too many" in answer.json()["message"]


@pytest.fixture
async def broker_with_cap() -> AsyncIterator[EdgeBroker]:
    async with running_broker(ephemeral_settings(http_server={"max_connections": 3, "request_timeout": 60})) as b:
        yield b


async def test_thousand_slow_sockets_leave_mqtt_serving() -> None:
    """1 000 slow admin sockets: beyond max_connections they are closed at once, so the broker's open
    descriptors stay bounded, and MQTT publishes and delivers meanwhile."""
    cap, count = 50, 1000
    process = psutil.Process()
    settings = ephemeral_settings(http_server={"max_connections": cap, "request_timeout": 60})
    async with running_broker(settings) as broker:
        descriptors_before = process.num_fds()
        async with open_sockets(broker, count, SLOW) as sockets:
            endings = [asyncio.ensure_future(until_closed(reader)) for reader, _ in sockets]
            async with asyncio.timeout(WAIT):
                while sum(ending.done() for ending in endings) < count - cap:
                    await asyncio.wait([e for e in endings if not e.done()], return_when=asyncio.FIRST_COMPLETED)
            answered = [parse_answer(e.result()) for e in endings if e.done() and e.result()]
            assert {answer.status for answer in answered} == {503}
            assert process.num_fds() - descriptors_before <= count + cap + 10  # the test's own sockets, and cap

            async with mqtt_client(broker, "sub") as subscriber, mqtt_client(broker, "pub") as publisher:
                await subscriber.subscribe("during/attack", qos=1)
                await publisher.publish("during/attack", b"still here", qos=1)
                assert (await next_message(subscriber)).payload == b"still here"
            for ending in endings:
                ending.cancel()


async def test_slow_requests_get_408_and_are_closed(caplog: pytest.LogCaptureFixture) -> None:
    """Half a header or half a body gets 408 JSON after request_timeout, a silent socket is closed;
    then the API serves again, all without a log line above DEBUG."""
    caplog.set_level(logging.DEBUG)
    settings = ephemeral_settings(http_server={"max_connections": 6, "request_timeout": 0.3})
    async with running_broker(settings) as broker, open_sockets(broker, 6, SLOW) as sockets:
        async with asyncio.timeout(WAIT):
            endings = await asyncio.gather(*(until_closed(reader) for reader, _ in sockets))
        for sent, ending in zip(SLOW * 2, endings, strict=True):
            if sent == NOTHING:
                assert ending == b""
            else:
                answer = parse_answer(ending)
                assert answer.status == 408
                assert answer.json() == {"code": 102, "message": "request not complete within 0.3s"}
        host, port = broker.http_address
        async with httpx.AsyncClient(timeout=WAIT) as client:
            assert (await client.get(f"http://{host}:{port}/healthz")).status_code == 200
    assert loud_records(caplog.records) == []


async def test_requests_are_timed_from_their_first_byte() -> None:
    """A keep-alive connection older than request_timeout still serves a request sent in parts."""
    settings = ephemeral_settings(http_server={"request_timeout": 0.3, "keepalive_timeout": 60})
    async with running_broker(settings) as broker:
        reader, writer = await asyncio.open_connection(*broker.http_address)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: edgemq\r\n\r\n")
            first = await read_one_answer(reader)
            async with open_sockets(broker, 1, [NOTHING]) as [(silent, _)]:
                assert await until_closed(silent) == b""  # request_timeout has passed since both opened
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: ")
            writer.write(b"edgemq\r\nConnection: close\r\n\r\n")
            second = await read_answer(reader)
        finally:
            writer.close()
    assert (first.status, second.status) == (200, 200)


PIPELINED_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: edgemq\r\n\r\n"
HALF_BODY_NO_CREDENTIALS = b'POST /api/v1 HTTP/1.1\r\nHost: edgemq\r\nContent-Length: 100\r\n\r\n{"req": 2'


@pytest.mark.parametrize(
    ("auth_type", "behind"),
    [("basic", HALF_BODY), ("no_auth", HALF_BODY_NO_CREDENTIALS), ("basic", HALF_HEADER)],
    ids=["basic-half-body", "no-auth-half-body", "half-header"],
)
async def test_pipelined_request_is_timed(auth_type: str, behind: bytes) -> None:
    """A request sent behind another in the same write gets 408 after request_timeout when incomplete."""
    limits = {"request_timeout": 0.3, "keepalive_timeout": 60, "auth_type": auth_type}
    async with running_broker(ephemeral_settings(http_server=limits)) as broker:
        reader, writer = await asyncio.open_connection(*broker.http_address)
        try:
            writer.write(PIPELINED_HEALTH + behind)
            first = await read_one_answer(reader)
            second = await read_answer(reader)
        finally:
            writer.close()
    assert first.status == 200
    assert (second.status, second.json()["code"]) == (408, 102)


async def test_request_sent_with_the_end_of_the_previous_body_is_timed() -> None:
    """A half-sent request that arrives with the last bytes of the body before it gets 408 after request_timeout."""
    body = b'{"req": 2, "seq": 1}'
    head = f"POST /api/v1 HTTP/1.1\r\nHost: edgemq\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
    settings = ephemeral_settings(http_server={"request_timeout": 0.3, "keepalive_timeout": 60})
    async with running_broker(settings) as broker:
        reader, writer = await asyncio.open_connection(*broker.http_address)
        try:
            writer.write(head.encode() + BASIC_ADMIN + b"\r\n")
            async with asyncio.timeout(WAIT):  # the handler waits for the body now
                assert b" 100 Continue" in await reader.readuntil(b"\r\n\r\n")
            writer.write(body + HALF_BODY)
            first = await read_one_answer(reader)
            second = await read_answer(reader)
        finally:
            writer.close()
    assert first.status == 200
    assert (second.status, second.json()["code"]) == (408, 102)


async def test_idle_keepalive_connection_is_closed() -> None:
    """An idle keep-alive connection is closed after keepalive_timeout."""
    settings = ephemeral_settings(http_server={"keepalive_timeout": 0.2, "request_timeout": 60})
    async with running_broker(settings) as broker:
        reader, writer = await asyncio.open_connection(*broker.http_address)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: edgemq\r\n\r\n")
            async with asyncio.timeout(2.5):  # well under uvicorn's own 5 s, well over 0.2 s
                answer = parse_answer(await reader.read())
        finally:
            writer.close()
    assert answer.status == 200


def test_limits_have_sane_defaults() -> None:
    """Defaults: 10 s per request, 5 s idle keep-alive, 256 connections."""
    http = BrokerSettings().http_server
    assert (http.request_timeout, http.keepalive_timeout, http.max_connections) == (10.0, 5.0, 256)


@pytest.mark.parametrize(
    "change", [{"request_timeout": 0}, {"keepalive_timeout": "0s"}, {"max_connections": 0}, {"request_timeout": -1}]
)
def test_limits_must_be_positive(change: dict[str, object]) -> None:
    """A zero or negative limit is a configuration error."""
    with pytest.raises(ValueError, match=next(iter(change))):
        ephemeral_settings(http_server=change)


async def test_limits_apply_after_a_restart(tmp_path: Path) -> None:
    """The limits are restart-only: req 12 lists them, and after a restart new connections get them."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:0" }\nhttp_server { port = 0, request_timeout = 60s }\n')
    broker = EdgeBroker(config=ConfigSource(conf))
    async with broker, httpx.AsyncClient(base_url=broker.api_url, auth=broker.admin_auth, timeout=WAIT) as api:
        change = {"req": 12, "seq": 1, "data": {"http_server": {"request_timeout": 0.2}}}
        answer = (await api.post("/v1", json=change)).json()
        assert answer["data"]["restart_required"] == ["http_server.request_timeout"]
        await broker.restart()
        async with open_sockets(broker, 1, [HALF_HEADER]) as [(reader, _)]:
            assert (await read_answer(reader)).status == 408


async def test_stop_ends_unfinished_requests_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """Stopping closes connections whose request is not complete at once: no handler is cancelled
    with a traceback, nothing above DEBUG is logged."""
    caplog.set_level(logging.DEBUG)
    expecting = b"POST /api/v1 HTTP/1.1\r\nHost: edgemq\r\nContent-Length: 100\r\nExpect: 100-continue\r\n"
    sockets = []
    try:
        async with running_broker(ephemeral_settings(http_server={"request_timeout": 60})) as broker:
            for sent in [expecting + BASIC_ADMIN + b"\r\n", HALF_HEADER, NOTHING]:
                reader, writer = await asyncio.open_connection(*broker.http_address)
                writer.write(sent)
                sockets.append((reader, writer))
            waiting_handler = sockets[0][0]
            async with asyncio.timeout(WAIT):  # the handler asked for the body: it waits for it now
                assert b" 100 Continue" in await waiting_handler.readuntil(b"\r\n\r\n")
        async with asyncio.timeout(WAIT):
            assert [await until_closed(reader) for reader, _ in sockets] == [b"", b"", b""]
    finally:
        for _, writer in sockets:
            writer.close()
    assert loud_records(caplog.records) == []
