"""What the admin port answers to upgrades, malformed HTTP and clients that leave mid-request."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker import EdgeBroker
from tests.api.http_support import BASIC_ADMIN, exchange, loud_records, watch_log
from tests.helpers import WAIT

pytestmark = pytest.mark.anyio

WEBSOCKET_UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def request(path: str, *headers: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: edgemq\r\n" + b"".join(headers) + b"\r\n"


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/api/v1", [], 401, 104),
        ("/api/v4/brokers", [], 401, 104),
        ("/api/v4/ws", [BASIC_ADMIN], 404, 102),
        ("/nothing-here", [], 404, 102),
        ("/mqtt", [], 404, 102),
        ("/healthz", [], 200, None),
    ],
)
async def test_websocket_upgrade_is_answered_as_http(
    broker: EdgeBroker,
    caplog: pytest.LogCaptureFixture,
    path: str,
    headers: list[bytes],
    status: int,
    code: int | None,
) -> None:
    """A WebSocket upgrade is not served: the request gets its plain JSON answer (401 first), quietly."""
    caplog.set_level(logging.DEBUG)
    answer = await exchange(broker.http_address, request(path, WEBSOCKET_UPGRADE, *headers), until_closed=False)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    if code is not None:
        assert answer.json()["code"] == code
        assert answer.json()["message"]
    assert loud_records(caplog.records) == []


async def test_other_upgrades_are_answered_as_http(broker: EdgeBroker, caplog: pytest.LogCaptureFixture) -> None:
    """An h2c upgrade is answered as HTTP/1.1, without a warning."""
    caplog.set_level(logging.DEBUG)
    upgrade = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
    answer = await exchange(broker.http_address, request("/api/v4", upgrade), until_closed=False)
    assert (answer.status, answer.json()["code"]) == (401, 104)
    assert loud_records(caplog.records) == []


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"GET /api/v1 HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
        b"POST /api/v1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n",  # a TLS ClientHello
    ],
)
async def test_malformed_http_is_a_json_400(broker: EdgeBroker, caplog: pytest.LogCaptureFixture, data: bytes) -> None:
    """Malformed HTTP gets a JSON 400 with a message and a closed connection, logged at DEBUG only."""
    caplog.set_level(logging.DEBUG)
    answer = await exchange(broker.http_address, data)
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"code": 102, "message": "malformed HTTP request"}
    assert loud_records(caplog.records) == []


@pytest.mark.parametrize("path", ["/api/v1", "/api/v4/mqtt/publish", "/api/v4/reload"])
async def test_client_leaving_mid_body_is_not_an_error(
    broker: EdgeBroker, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """A client that disconnects before its body is complete is logged at DEBUG, not as an internal error."""
    caplog.set_level(logging.DEBUG)
    head = f"POST {path} HTTP/1.1\r\nHost: edgemq\r\nContent-Length: 100\r\n".encode() + BASIC_ADMIN + b"\r\n"
    with watch_log("edgemq.api", lambda record: "went away" in record.getMessage()) as went_away:
        _, writer = await asyncio.open_connection(*broker.http_address)
        writer.write(head + b'{"req": 2,')
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(WAIT):
            await went_away.wait()
    assert loud_records(caplog.records) == []
