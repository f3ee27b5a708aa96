"""Every error row of spec sections 1 and 2 for POST /api/v1, against a running broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from broker import BrokerState, EdgeBroker, Stats
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, running_broker, v1

pytestmark = pytest.mark.anyio


async def post(api: httpx.AsyncClient, content: bytes | str, **kwargs: object) -> httpx.Response:
    return await api.post("/v1", content=content, **kwargs)  # type: ignore[arg-type]


def assert_json_error(response: httpx.Response, status: int, body: dict[str, int]) -> None:
    """``status`` and a JSON body: NanoMQ's fields ``body``, then a human ``message``."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert list(answer)[-1] == "message"
    message = answer.pop("message")
    assert answer == body
    assert isinstance(message, str)
    assert message


async def test_missing_credentials(broker: EdgeBroker) -> None:
    """No Authorization header: 401 with code 104 and a Basic challenge."""
    async with httpx.AsyncClient(base_url=broker.api_url) as client:
        response = await client.post("/v1", json={"req": 2, "seq": 1})
    assert_json_error(response, 401, {"code": 104})
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_wrong_password(broker: EdgeBroker) -> None:
    """A wrong password: 401 with code 103."""
    async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "nope")) as client:
        response = await client.post("/v1", json={"req": 2, "seq": 1})
    assert_json_error(response, 401, {"code": 103})


async def test_auth_is_checked_before_the_body(broker: EdgeBroker) -> None:
    """An unauthenticated request with invalid JSON gets 401, not a parse error."""
    async with httpx.AsyncClient(base_url=broker.api_url) as client:
        response = await client.post("/v1", content=b"{not json")
    assert_json_error(response, 401, {"code": 104})


async def test_custom_credentials() -> None:
    """Configured admin credentials replace the defaults."""
    async with running_broker(ephemeral_settings(http_server={"username": "ops", "password": "s3cret"})) as broker:
        async with httpx.AsyncClient(base_url=broker.api_url, auth=("ops", "s3cret")) as good:
            assert (await v1(good, 2))["message_in"] == 0
        async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public")) as old:
            assert (await old.post("/v1", json={"req": 2, "seq": 1})).status_code == 401


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"42"])
async def test_body_not_a_json_object(api: httpx.AsyncClient, content: bytes) -> None:
    """An empty, non-JSON or non-object body: 400 with code 109 and seq 0."""
    assert_json_error(await post(api, content), 400, {"code": 109, "seq": 0})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"seq": 7}', {"code": 107, "seq": 7}),
        ('{"req": 2}', {"code": 107, "seq": 0}),
        ("{}", {"code": 107, "seq": 0}),
    ],
)
async def test_req_or_seq_missing(api: httpx.AsyncClient, body: str, expected: dict[str, int]) -> None:
    """A missing req or seq: 400 with code 107, echoing a valid seq."""
    assert_json_error(await post(api, body), 400, expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"req": "2", "seq": 3}', {"code": 108, "seq": 3}),
        ('{"req": true, "seq": 3}', {"code": 108, "seq": 3}),
        ('{"req": 2.0, "seq": 3}', {"code": 108, "seq": 3}),
        ('{"req": -2, "seq": 3}', {"code": 108, "seq": 3}),
        ('{"req": null, "seq": 3}', {"code": 108, "seq": 3}),
        ('{"req": 2, "seq": "3"}', {"code": 108, "seq": 0}),
        ('{"req": 2, "seq": -1}', {"code": 108, "seq": 0}),
        ('{"req": 2, "seq": false}', {"code": 108, "seq": 0}),
    ],
)
async def test_req_or_seq_wrong_type(api: httpx.AsyncClient, body: str, expected: dict[str, int]) -> None:
    """req or seq that is not a non-negative integer: 400 with code 108."""
    assert_json_error(await post(api, body), 400, expected)


async def test_unknown_req(api: httpx.AsyncClient) -> None:
    """An integer req without a handler: 404 with code 108, seq and rep."""
    assert_json_error(await post(api, '{"req": 999, "seq": 5}'), 404, {"code": 108, "seq": 5, "rep": 999})


async def test_oversized_body_with_length() -> None:
    """A body over max_body (declared by Content-Length): 400 with code 108."""
    async with (
        running_broker(ephemeral_settings(http_server={"max_body": 1024})) as broker,
        httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public")) as client,
    ):
        response = await client.post("/v1", content=b'{"req": 2, "seq": 1, "pad": "' + b"x" * 2000 + b'"}')
        assert_json_error(response, 400, {"code": 108, "seq": 0})
        assert (await v1(client, 2))["message_in"] == 0


async def test_oversized_chunked_body() -> None:
    """A chunked body that grows past max_body: 400 with code 108, without reading it all."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"req": 2, "seq": 1, "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    async with (
        running_broker(ephemeral_settings(http_server={"max_body": 1024})) as broker,
        httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public")) as client,
    ):
        response = await client.post("/v1", content=chunks())
    assert_json_error(response, 400, {"code": 108, "seq": 0})


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH"])
async def test_v1_is_post_only(api: httpx.AsyncClient, method: str) -> None:
    """Any method but POST, with or without a body: 405/102 naming POST, nothing done."""
    response = await api.request(method, "/v1", content=b'{"req": 2, "seq": 9}')
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    if method != "HEAD":
        assert_json_error(response, 405, {"code": 102})


async def test_trailing_slash(api: httpx.AsyncClient) -> None:
    """/api/v1/ is the same endpoint as /api/v1."""
    response = await api.post("/v1/", json={"req": 2, "seq": 4})
    assert response.status_code == 200
    assert response.json()["rep"] == 2


async def test_answer_is_compact_json_in_key_order(api: httpx.AsyncClient) -> None:
    """Success answers are compact JSON with keys code, seq, rep, data."""
    response = await api.post("/v1", json={"req": 2, "seq": 1})
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"code":0,"seq":1,"rep":2,"data":{"client_size":0,')


async def test_unknown_path_and_method(api: httpx.AsyncClient) -> None:
    """Unknown paths get 404 and wrong methods 405, both as JSON with code 102."""
    assert_json_error(await api.get("/nothing/here"), 404, {"code": 102})
    assert_json_error(await api.put("/v1", content=b"{}"), 405, {"code": 102})


class FailingState(BrokerState):
    """The real state, except that reading statistics fails."""

    def stats(self) -> Stats:
        raise RuntimeError("boom")


async def test_internal_error_is_500_and_broker_keeps_serving() -> None:
    """A failing handler answers 500/102 without a traceback; MQTT and the API keep working."""
    async with (
        running_broker(state=FailingState()) as broker,
        httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public"), timeout=WAIT) as api,
    ):
        response = await api.post("/v1", json={"req": 2, "seq": 3})
        assert_json_error(response, 500, {"code": 102, "seq": 3, "rep": 2})
        assert "Traceback" not in response.text
        async with mqtt_client(broker, "after-error"):
            clients = await v1(api, 5)
        assert [c["client_id"] for c in clients] == ["after-error"]


async def test_health_endpoints_need_no_auth(broker: EdgeBroker) -> None:
    """/healthz and /readyz answer without credentials while the broker runs."""
    host, port = broker.http_address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
