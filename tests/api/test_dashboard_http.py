"""The dashboard's HTTP side: its pages behind the API's auth, and the API figures it shows."""

from __future__ import annotations

import base64

import httpx
import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, running_broker
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

PAGES = ["/dashboard", *(f"/dashboard/static/{name}" for name in ("dashboard.js", "common.js", "dashboard.css"))]


def site(broker: EdgeBroker, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
    """A client for the admin port's root (the dashboard lives outside /api)."""
    return httpx.AsyncClient(base_url=broker.api_url.removesuffix("/api"), auth=auth, timeout=WAIT)


@pytest.mark.parametrize("path", PAGES)
async def test_dashboard_needs_the_admin_credentials(broker: EdgeBroker, path: str) -> None:
    """Without credentials the page and its files answer 401 with a Basic challenge (the browser's prompt)."""
    async with site(broker) as client:
        response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="edgemq"'
    assert response.json()["code"] == 104


@pytest.mark.parametrize("path", PAGES)
async def test_wrong_password_is_refused(broker: EdgeBroker, path: str) -> None:
    """A wrong password gets 401/103, not the page."""
    async with site(broker, ("admin", "wrong")) as client:
        response = await client.get(path)
    assert (response.status_code, response.json()["code"]) == (401, 103)


async def test_page_is_served_with_a_strict_content_security_policy(broker: EdgeBroker) -> None:
    """The page loads scripts from its own origin only and may not be framed by another site."""
    async with site(broker, broker.admin_auth) as client:
        response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert '<script type="module" src="/dashboard/static/dashboard.js">' in response.text


async def test_root_redirects_to_the_dashboard(broker: EdgeBroker) -> None:
    """GET / answers a redirect to /dashboard, without needing credentials."""
    async with site(broker) as client:
        response = await client.get("/")
    assert (response.status_code, response.headers["location"]) == (303, "/dashboard")


async def test_no_auth_opens_the_dashboard() -> None:
    """With http_server.auth_type = no_auth the dashboard needs no credentials, like the API."""
    async with (
        running_broker(ephemeral_settings(http_server={"auth_type": "no_auth"})) as broker,
        site(broker) as client,
    ):
        assert (await client.get("/dashboard")).status_code == 200


async def test_unknown_dashboard_file_is_a_json_404(broker: EdgeBroker) -> None:
    """A file the dashboard does not have is 404 JSON, like any unknown path."""
    async with site(broker, broker.admin_auth) as client:
        response = await client.get("/dashboard/static/missing.js")
    assert (response.status_code, response.json()["code"]) == (404, 102)


async def test_retained_message_answers_its_payload_in_base64(api: httpx.AsyncClient) -> None:
    """GET /mqtt/retained/message?topic= answers the message with its payload in base64."""
    payload = bytes(range(250, 256)) + b"ok"
    body = {"topic": "state/raw", "payload": base64.b64encode(payload).decode(), "encoding": "base64", "retain": True}
    assert (await api.post("/v4/mqtt/publish", json={**body, "qos": 1})).json() == {"code": 0}
    response = await api.get("/v4/mqtt/retained/message", params={"topic": "state/raw"})
    assert response.json() == {
        "code": 0,
        "data": {"topic": "state/raw", "qos": 1, "payload_size": 8, "payload": base64.b64encode(payload).decode()},
    }


@pytest.mark.parametrize(("params", "status", "code"), [({"topic": "no/such"}, 404, 102), ({}, 400, 107)])
async def test_retained_message_refusals(
    api: httpx.AsyncClient, params: dict[str, str], status: int, code: int
) -> None:
    """An unknown topic is 404/102 and a missing topic 400/107, as for DELETE."""
    response = await api.get("/v4/mqtt/retained/message", params=params)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_metrics_count_connected_clients_and_subscriptions(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """/metrics adds the connected clients and the subscriptions the dashboard shows."""
    async with mqtt_client(broker, "dash-1") as client:
        await client.subscribe("a/#")
        await client.subscribe("b")
        metrics = (await api.get("/v4/metrics")).json()
    assert (metrics["connected"], metrics["subscriptions"]) == (1, 2)


async def test_brokers_list_the_bound_listeners(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """/brokers names every bound MQTT listener by URL, with its real port."""
    [about] = (await api.get("/v4/brokers")).json()["data"]
    assert about["listeners"] == broker.mqtt_urls == [broker.mqtt_url]


async def test_kick_of_an_id_ending_in_an_encoded_slash_kicks_that_client(
    broker: EdgeBroker, api: httpx.AsyncClient
) -> None:
    """DELETE /v4/clients/dev%2F kicks ``dev/`` and leaves ``dev`` connected (only a literal trailing / is ignored)."""
    async with mqtt_client(broker, "dev"), RawClient.open(broker.mqtt_address) as slashed:
        assert await slashed.connack(encode_connect("dev/")) == (0, 0)
        assert (await api.delete("/v4/clients/dev%2F")).json() == {"code": 0}
        assert await slashed.closed_by_peer()
        [kept] = (await api.get("/v4/clients/dev")).json()["data"]
        assert kept["conn_state"] == "connected"


@pytest.mark.parametrize("path", [*PAGES, "/dashboard/static/index.html"])
async def test_every_dashboard_file_is_revalidated_and_not_sniffed(broker: EdgeBroker, path: str) -> None:
    """The page and each static file answer no-cache, nosniff and the page's frame-ancestors policy."""
    async with site(broker, broker.admin_auth) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_referrer_policy_keeps_the_origin_on_same_origin_requests(broker: EdgeBroker) -> None:
    """Referrer-Policy is same-origin: no-referrer makes Firefox send Origin: null, which the API refuses."""
    async with site(broker, broker.admin_auth) as client:
        response = await client.get("/dashboard")
    assert response.headers["referrer-policy"] == "same-origin"


async def test_retained_message_answers_at_most_max_bytes_of_its_payload(api: httpx.AsyncClient) -> None:
    """?max_bytes=N answers the payload's first N bytes and its full size (the page shows the start)."""
    body = {"topic": "state/big", "payload": "0123456789", "retain": True}
    assert (await api.post("/v4/mqtt/publish", json=body)).json() == {"code": 0}
    response = await api.get("/v4/mqtt/retained/message", params={"topic": "state/big", "max_bytes": "4"})
    data = response.json()["data"]
    assert (data["payload_size"], base64.b64decode(data["payload"])) == (10, b"0123")


@pytest.mark.parametrize("limit", ["-1", "x", "1.5", ""])
async def test_retained_message_refuses_a_bad_max_bytes(api: httpx.AsyncClient, limit: str) -> None:
    """A max_bytes that is not a whole number from 0 is 400/108."""
    body = {"topic": "state/big", "payload": "0123456789", "retain": True}
    assert (await api.post("/v4/mqtt/publish", json=body)).json() == {"code": 0}
    response = await api.get("/v4/mqtt/retained/message", params={"topic": "state/big", "max_bytes": limit})
    assert (response.status_code, response.json()["code"]) == (400, 108)
