"""v4 input validation: paging numbers, publish bodies checked whole before anything is
published, MQTT's topic rules over HTTP, retained listings that cannot fail, path parameters
with line breaks, and large batches that share the event loop with MQTT."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from broker import EdgeBroker
from tests.helpers import mqtt_client, next_message, wait_state

pytestmark = pytest.mark.anyio

PUBLISH = "/v4/mqtt/publish"
BATCH = "/v4/mqtt/publish_batch"


async def refused(response: httpx.Response, status: int, code: int) -> None:
    """``response`` is ``status`` with ``code`` and a human message, as JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)


def raw_json(value: Any) -> bytes:
    """``value`` as JSON text; lone surrogates become ``\\udxxx`` escapes, NaN stays NaN."""
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "value",
    ["\u0661", "\u00b2", "\uff11", "1" * 4301, "9" * 11, "+1", " 1", "1.0", "-1", "0", "0x1", ""],
    ids=["arabic-indic", "superscript", "fullwidth", "4301-digits", "11-digits", "plus", "space", "dot", "minus",
         "zero", "hex", "empty"],
)  # fmt: skip
@pytest.mark.parametrize("name", ["_page", "_limit"])
async def test_paging_numbers_are_bounded_ascii_digits(api: httpx.AsyncClient, name: str, value: str) -> None:
    """_page and _limit are ASCII digits within their range; anything else is 400/108, never 500."""
    await refused(await api.get("/v4/clients", params={name: value}), 400, 108)


async def test_largest_page_number_is_an_empty_page(api: httpx.AsyncClient) -> None:
    """_page may be as large as 2**31 - 1: an empty page with meta."""
    body = (await api.get("/v4/subscriptions", params={"_page": str(2**31 - 1)})).json()
    assert body == {"code": 0, "data": [], "meta": {"page": 2**31 - 1, "limit": 10_000, "count": 0}}


@pytest.mark.parametrize(
    "topic",
    ["a/\ud800", "a\u0000b", "\u00e9" * 32_768, "a" * 65_536, "$SYS/x", "$SYS"],
    ids=["lone-surrogate", "nul", "65536-utf8-bytes", "65536-ascii-bytes", "sys-level", "sys"],
)
async def test_publish_refuses_topics_mqtt_refuses(broker: EdgeBroker, api: httpx.AsyncClient, topic: str) -> None:
    """A topic MQTT refuses (not UTF-8, U+0000, over 65 535 bytes) or $SYS is 400/115; nothing is published."""
    await refused(await api.post(PUBLISH, content=raw_json({"topic": topic, "payload": "x", "retain": True})), 400, 115)
    assert broker.stats().message_in == 0


async def test_publish_takes_the_longest_topic_and_dollar_topics(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """A 65 535-byte topic, non-BMP characters and $ topics other than $SYS are published."""
    for topic in ("\u00e9" * 32_767 + "a", "\U0001f600/\uffff", "$app/status"):
        assert (await api.post(PUBLISH, content=raw_json({"topic": topic, "payload": "x"}))).json() == {"code": 0}
    assert broker.stats().message_in == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"topic": "t", "payload": "\udc80"}, 108),
        ({"topic": "t", "payload": "x", "qos": float("nan")}, 108),
        ({"payload": float("inf")}, 108),
        ({"topic": "t", "payload": "x", "extra": [float("-inf")]}, 108),
        ({"topic": "t", "topics": 5, "payload": "x"}, 108),
    ],
    ids=["lone-surrogate-payload", "nan-qos", "infinite-payload-no-topic", "nested-infinity", "topics-not-string"],
)
async def test_publish_refuses_values_json_cannot_carry(
    broker: EdgeBroker, api: httpx.AsyncClient, body: dict[str, Any], code: int
) -> None:
    """A payload that is not Unicode text, NaN or Infinity anywhere, or a mistyped field is 400/108."""
    await refused(await api.post(PUBLISH, content=raw_json(body)), 400, code)
    assert broker.stats().message_in == 0


@pytest.mark.parametrize(
    "bad_item",
    [5, None, [], {"topic": "t", "payload": "x", "qos": float("nan")}, {"topic": float("inf"), "payload": "x"}],
    ids=["number", "null", "array", "nan-qos", "infinite-topic"],
)
async def test_batch_with_a_bad_item_after_a_good_one_publishes_nothing(
    broker: EdgeBroker, api: httpx.AsyncClient, bad_item: Any
) -> None:
    """An item that is not an object, or NaN/Infinity in any item, is 400/108 for the batch: nothing published."""
    async with mqtt_client(broker, "watcher") as watcher:
        await watcher.subscribe("#")
        response = await api.post(BATCH, content=raw_json([{"topic": "good", "payload": "1"}, bad_item]))
        await refused(response, 400, 108)
        await watcher.publish("marker", b"m")
        assert str((await next_message(watcher)).topic) == "marker"  # "good" never came first
    assert broker.stats().message_in == 1


@pytest.mark.parametrize("body", [{"topic": "t", "payload": "x"}, "x", None])
async def test_batch_that_is_not_an_array_is_refused(broker: EdgeBroker, api: httpx.AsyncClient, body: Any) -> None:
    """A publish_batch body that is not a JSON array is 400/108."""
    await refused(await api.post(BATCH, content=raw_json(body)), 400, 108)
    assert broker.stats().message_in == 0


async def test_batch_topic_errors_are_per_item(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """Items with topics MQTT refuses get 115 each (shown as text), the others are published."""
    items = [
        {"topic": "ok/1", "payload": "1"},
        {"topic": "bad/\ud800", "payload": "2"},
        {"topic": "bad\u0000", "payload": "3"},
        {"topic": "$SYS/x", "payload": "4"},
        {"topic": "a" * 65_536, "payload": "5"},
        {"topic": "ok/2", "payload": "\udc80"},
        {"topic": "ok/3", "payload": "6"},
    ]
    answer = await api.post(BATCH, content=raw_json(items))
    assert answer.status_code == 200, answer.text
    assert [(r["topic"], r["code"]) for r in answer.json()["data"]] == [
        ("ok/1", 0), ("bad/\\ud800", 115), ("bad\u0000", 115), ("$SYS/x", 115), ("a" * 65_536, 115), ("ok/2", 108),
        ("ok/3", 0),
    ]  # fmt: skip
    assert broker.stats().message_in == 2


async def test_retained_listing_survives_every_publish_attempt(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """After retained publishes of odd topics, valid or not, GET /mqtt/retained answers 200 with the valid ones."""
    odd = ["r/\ud800", "r\u0000", "$SYS/r", "\u00e9" * 32_768, "\u00e9" * 32_767, "r/\U0001f600", "$app/r", "r/\uffff"]
    for topic in odd:
        await api.post(PUBLISH, content=raw_json({"topic": topic, "payload": "x", "retain": True}))
    await api.post(BATCH, content=raw_json([{"topic": t, "payload": "y", "retain": True} for t in odd]))
    async with mqtt_client(broker, "device") as device:
        await device.publish("r/mqtt/\u00e9", b"z", retain=True)
        await wait_state(broker, lambda s: s.stats().message_in == 2 * 4 + 1)
    listing = await api.get("/v4/mqtt/retained")
    assert listing.status_code == 200
    assert sorted(row["topic"] for row in listing.json()["data"]) == sorted(
        ["\u00e9" * 32_767, "r/\U0001f600", "$app/r", "r/\uffff", "r/mqtt/\u00e9"]
    )


async def test_path_parameter_with_a_final_line_break_is_that_whole_id(
    broker: EdgeBroker, api: httpx.AsyncClient
) -> None:
    """/clients/abc%0A is the client "abc\\n", not "abc": lookups and kicks name exactly one client."""
    async with mqtt_client(broker, "abc"):
        assert (await api.get("/v4/clients/abc%0A")).json() == {"code": 0, "data": []}
        await refused(await api.delete("/v4/clients/abc%0A"), 404, 112)
        assert (await api.get("/v4/clients/a%0Ab")).json() == {"code": 0, "data": []}
        assert [c["client_id"] for c in (await api.get("/v4/clients/abc")).json()["data"]] == ["abc"]


async def test_mqtt_is_served_while_a_large_batch_is_published(broker: EdgeBroker, api: httpx.AsyncClient) -> None:
    """During a 27 000-item publish_batch an MQTT round trip completes before the batch is done."""
    count = 27_000
    body = raw_json([{"topic": f"b/{n}", "payload": "x"} for n in range(count)])
    async with mqtt_client(broker, "pinger") as pinger:
        await pinger.subscribe("ping")
        batch = asyncio.create_task(api.post(BATCH, content=body))
        await wait_state(broker, lambda s: s.stats().message_in > 0)  # the batch is being published
        await pinger.publish("ping", b"1")
        assert (await next_message(pinger)).payload == b"1"
        published_meanwhile = broker.stats().message_in - 1
        answer = await batch
    assert answer.status_code == 200
    assert len(answer.json()["data"]) == count
    assert published_meanwhile < count
    assert broker.stats().message_in == count + 1
