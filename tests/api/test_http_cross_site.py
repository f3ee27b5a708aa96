"""State-changing requests a cross-site page could forge are refused (spec section 2), curl's are not."""

from __future__ import annotations

import httpx
import pytest

from broker import EdgeBroker
from tests.helpers import v1

pytestmark = pytest.mark.anyio

STATE_CHANGING = [
    ("POST", "/v1", b'{"req": 10, "seq": 1, "action": "stop"}'),
    ("POST", "/v4/mqtt/publish", b'{"topic": "t", "payload": "x"}'),
    ("POST", "/v4/reload", b'{"data": {"log": {"level": "debug"}}}'),
    ("POST", "/v4/ctrl/stop", b""),
    ("DELETE", "/v4/clients/someone", b""),
    ("DELETE", "/v4/mqtt/retained?topic=t", b""),
]


def assert_nothing_done(broker: EdgeBroker) -> None:
    assert broker.stats().message_in == 0
    assert broker.settings.log.level == "info"


def own_origin(broker: EdgeBroker) -> str:
    host, port = broker.http_address
    return f"http://{host}:{port}"


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "multipart/form-data; boundary=x"])
@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING)
async def test_form_content_types_are_415(
    broker: EdgeBroker, api: httpx.AsyncClient, content_type: str, method: str, path: str, body: bytes
) -> None:
    """A body a browser form can send (text/plain, multipart) gets 415/108 with a message, and nothing happens."""
    response = await api.request(method, path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["code"] == 108
    assert "JSON" in answer["message"]
    assert_nothing_done(broker)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"])
@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGING)
async def test_foreign_origin_is_403(
    broker: EdgeBroker, api: httpx.AsyncClient, origin: str, method: str, path: str, body: bytes
) -> None:
    """A state-changing request from another site's page (its Origin) gets 403/108 with a message."""
    headers = {"Content-Type": "application/json", "Origin": origin}
    response = await api.request(method, path, content=body, headers=headers)
    assert response.status_code == 403
    answer = response.json()
    assert answer["code"] == 108
    assert "cross-site" in answer["message"]
    assert_nothing_done(broker)


@pytest.mark.parametrize("content_type", [None, "application/json", "application/x-www-form-urlencoded"])
async def test_curl_and_json_bodies_are_served(api: httpx.AsyncClient, content_type: str | None) -> None:
    """No content type, JSON, and what curl -d sends (form-urlencoded) are read as JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api.post("/v1", content=b'{"req": 2, "seq": 5}', headers=headers)
    assert response.status_code == 200
    assert response.json()["seq"] == 5


async def test_own_origin_is_served(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A page served from the admin API's own host and port may post."""
    response = await api.post("/v1", json={"req": 2, "seq": 6}, headers={"Origin": own_origin(broker)})
    assert response.status_code == 200


async def test_reads_ignore_origin(api: httpx.AsyncClient) -> None:
    """GET carries no state change: a foreign Origin does not matter (the browser hides the answer)."""
    response = await api.get("/v4/brokers", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200


async def test_authentication_comes_first(broker: EdgeBroker) -> None:
    """Without credentials a forged request gets 401, as every other."""
    async with httpx.AsyncClient(base_url=broker.api_url) as client:
        response = await client.post("/v1", content=b"{}", headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.json()["code"]) == (401, 104)


async def test_broker_serves_after_refusals(api: httpx.AsyncClient) -> None:
    """A refused request leaves the connection and the API usable."""
    refused = await api.post("/v1", content=b'{"req": 2, "seq": 1}', headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert (await v1(api, 2))["message_in"] == 0


@pytest.mark.parametrize("origin", ["http://127.0.0.1:1880", "http://127.0.0.1:8081", "http://127.0.0.1:443"])
async def test_host_without_port_refuses_origin_on_another_port(
    broker: EdgeBroker, api: httpx.AsyncClient, origin: str
) -> None:
    """With a Host without port (port 80, or a proxy's $host), an Origin on another port gets 403/108."""
    headers = {"Host": "127.0.0.1", "Origin": origin}
    response = await api.post("/v4/mqtt/publish", json={"topic": "t", "payload": "x"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, 108)
    assert_nothing_done(broker)


@pytest.mark.parametrize("origin", ["http://127.0.0.1", "http://127.0.0.1:80"])
async def test_host_without_port_accepts_origin_on_the_default_port(api: httpx.AsyncClient, origin: str) -> None:
    """With a Host without port, an Origin on the scheme's default port (80 for http) is the same site."""
    response = await api.post("/v1", json={"req": 2, "seq": 7}, headers={"Host": "127.0.0.1", "Origin": origin})
    assert response.status_code == 200


@pytest.mark.parametrize("port_in_host", [True, False])
async def test_origin_with_another_scheme_is_403(
    broker: EdgeBroker, api: httpx.AsyncClient, port_in_host: bool
) -> None:
    """An https Origin on the request's own host and port, for a request that came over http, gets 403/108."""
    host, port = broker.http_address
    if port_in_host:
        headers = {"Host": f"{host}:{port}", "Origin": f"https://{host}:{port}"}
    else:
        headers = {"Host": host, "Origin": f"https://{host}:80"}
    response = await api.post("/v4/mqtt/publish", json={"topic": "t", "payload": "x"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, 108)
    assert_nothing_done(broker)


async def test_https_origin_behind_a_local_tls_proxy_is_served(api: httpx.AsyncClient) -> None:
    """Behind a TLS proxy on this host that sends X-Forwarded-Proto: https, the https Origin is the same site."""
    headers = {"Host": "127.0.0.1", "Origin": "https://127.0.0.1", "X-Forwarded-Proto": "https"}
    response = await api.post("/v1", json={"req": 2, "seq": 8}, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
async def test_sec_fetch_site_of_another_site_is_403(broker: EdgeBroker, api: httpx.AsyncClient, site: str) -> None:
    """A browser's Sec-Fetch-Site: cross-site or same-site gets 403/108, even with no Origin."""
    headers = {"Sec-Fetch-Site": site}
    response = await api.post("/v4/mqtt/publish", json={"topic": "t", "payload": "x"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (403, 108)
    assert "cross-site" in response.json()["message"]
    assert_nothing_done(broker)


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_sec_fetch_site_of_the_same_origin_is_served(
    broker: EdgeBroker, api: httpx.AsyncClient, site: str
) -> None:
    """Sec-Fetch-Site: same-origin (the API's own page) and none (typed by the user) are served."""
    headers = {"Sec-Fetch-Site": site, "Origin": own_origin(broker)}
    response = await api.post("/v1", json={"req": 2, "seq": 9}, headers=headers)
    assert response.status_code == 200
