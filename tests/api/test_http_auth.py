"""Malformed Authorization headers on every /api path: a JSON 401, never a 500 or a log line above DEBUG."""

from __future__ import annotations

import logging

import httpx
import pytest

from broker import EdgeBroker
from tests.api.http_support import loud_records

pytestmark = pytest.mark.anyio

PATHS = ["/v1", "/v4", "/v4/brokers", "/v4/clients", "/v4/prometheus", "/v4/mqtt/publish", "/nothing"]

MALFORMED = [
    (b"Basic \xc3\xa9\xff\xfe", 103),
    (b"Basic YWRt\xe9aW46cHVibGlj", 103),
    (b"B\xe4sic YWRtaW46cHVibGlj", 104),
    (b"\xff\xff\xff", 104),
    (b"Basic", 104),
    (b"Bearer abc.def.ghi", 104),
    (b"Basic !!!not-base64", 103),
    (b"Basic YWRtaW5wdWJsaWM=", 103),  # admin public, no colon
    (b"Basic //46eA==", 103),  # not UTF-8 once decoded
]


@pytest.mark.parametrize(("header", "code"), MALFORMED)
async def test_malformed_authorization_is_401(
    broker: EdgeBroker, caplog: pytest.LogCaptureFixture, header: bytes, code: int
) -> None:
    """A malformed Authorization header gets 401 with code 104 or 103 and a message on every /api path, quietly."""
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=broker.api_url) as client:
        for path in PATHS:
            response = await client.post(path, headers={b"Authorization": header}, content=b"{}")
            assert response.status_code == 401, (path, response.text)
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["code"] == code, path
            assert body["message"]
            assert response.headers["www-authenticate"].startswith("Basic")
    assert loud_records(caplog.records) == []


async def test_refusal_says_what_was_wrong(broker: EdgeBroker) -> None:
    """Missing, empty and wrong credentials each get their own message after NanoMQ's code."""
    async with httpx.AsyncClient(base_url=broker.api_url) as client:
        missing = (await client.get("/v4/brokers")).json()
        empty = (await client.get("/v4/brokers", auth=("admin", ""))).json()
        wrong = (await client.get("/v4/brokers", auth=("admin", "nope"))).json()
    assert missing == {"code": 104, "message": "Basic credentials required"}
    assert empty == {"code": 104, "message": "empty username or password"}
    assert wrong == {"code": 103, "message": "wrong username or password"}
