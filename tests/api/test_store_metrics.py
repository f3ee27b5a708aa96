"""The embedded store's figures in req 2, /api/v4/metrics and /api/v4/prometheus, from a real store file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import EdgeBroker
from broker.persistence.store import Statement, Store, StoreError
from tests.helpers import WAIT, v1

pytestmark = pytest.mark.anyio

RETAIN = Statement("INSERT OR REPLACE INTO retained (topic, payload, qos) VALUES (?, ?, ?)", ("a/b", b"payload", 1))
NULL_PAYLOAD = Statement(
    "INSERT INTO retained (topic, payload, qos) VALUES (?, ?, ?)", ("t", None, 0)
)  # payload is NOT NULL
STORE_KEYS = {"path", "file_bytes", "pending_writes", "commits", "commit_seconds_total", "last_commit_seconds",
              "write_errors", "last_error"}  # fmt: skip


@pytest.fixture
async def store(broker: EdgeBroker, tmp_path: Path) -> AsyncIterator[Store]:
    """A real store attached to the broker's state (persistence is not wired into the broker yet)."""
    opened = Store.open(tmp_path / "edgemq.db")
    broker.state.attach_store(opened.stats)
    yield opened
    broker.state.attach_store(None)
    opened.close()


async def scrape(api: httpx.AsyncClient) -> dict[str, float]:
    """Every sample of /api/v4/prometheus by name."""
    response = await api.get("/v4/prometheus")
    assert response.status_code == 200, response.text
    families = text_string_to_metric_families(response.text)
    return {sample.name: sample.value for family in families for sample in family.samples}


async def metrics(api: httpx.AsyncClient) -> dict[str, Any]:
    """The body of /api/v4/metrics."""
    response = await api.get("/v4/metrics")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def file_bytes(store: Store) -> int:
    """The store's file and its write-ahead log, measured here."""
    return sum(os.stat(name).st_size for name in (store.path, f"{store.path}-wal") if os.path.exists(name))


async def fail_once(store: Store) -> None:
    """One write the database refuses."""
    with pytest.raises(StoreError):
        await store.write([NULL_PAYLOAD])


async def test_req2_has_only_nanomqs_fields_while_persistence_is_off(api: httpx.AsyncClient) -> None:
    """Without a store req 2 answers NanoMQ's four counters and no store object."""
    assert set(await v1(api, 2)) == {"client_size", "message_in", "message_out", "message_drop"}


async def test_metrics_have_no_store_while_persistence_is_off(api: httpx.AsyncClient) -> None:
    """Without a store /metrics has no store object."""
    body = await metrics(api)
    assert "messages_received" in body
    assert "store" not in body


async def test_prometheus_has_no_store_series_while_persistence_is_off(api: httpx.AsyncClient) -> None:
    """Without a store a scrape has NanoMQ's metrics and no edgemq_store_* series."""
    samples = await scrape(api)
    assert "nanomq_messages_received" in samples
    assert [name for name in samples if name.startswith("edgemq_store")] == []


async def test_req2_store_object_reports_a_committed_write(api: httpx.AsyncClient, store: Store) -> None:
    """After one committed write req 2's store object has the store's path, size, one commit and no errors."""
    await store.write([RETAIN])
    data = await v1(api, 2)
    figures = data.pop("store")
    stats = store.stats()
    assert set(data) == {"client_size", "message_in", "message_out", "message_drop"}
    assert set(figures) == STORE_KEYS
    assert figures["path"] == str(store.path)
    assert figures["file_bytes"] == file_bytes(store) > 0
    assert (figures["pending_writes"], figures["commits"], figures["write_errors"]) == (0, 1, 0)
    assert figures["commit_seconds_total"] == figures["last_commit_seconds"] == stats.commit_seconds_total > 0
    assert figures["last_error"] is None


async def test_metrics_store_object_is_req2s(api: httpx.AsyncClient, store: Store) -> None:
    """/metrics carries the same store object as req 2."""
    await store.write([RETAIN])
    body = await metrics(api)
    assert body["store"] == (await v1(api, 2))["store"]
    assert body["store"]["commits"] == 1


async def test_prometheus_store_series_report_a_committed_write(api: httpx.AsyncClient, store: Store) -> None:
    """After one committed write the edgemq_store_* series give the size, one commit, its time, no errors."""
    await store.write([RETAIN])
    samples = await scrape(api)
    stats = store.stats()
    assert samples["edgemq_store_file_bytes"] == file_bytes(store) > 0
    assert samples["edgemq_store_pending_writes"] == 0
    assert samples["edgemq_store_commit_seconds_count"] == 1
    assert samples["edgemq_store_commit_seconds_sum"] == pytest.approx(stats.commit_seconds_total)
    assert samples["edgemq_store_last_commit_seconds"] == pytest.approx(stats.last_commit_seconds)
    assert samples["edgemq_store_write_errors_total"] == 0
    assert samples["edgemq_store_failing"] == 0


async def test_prometheus_store_series_have_proper_types(api: httpx.AsyncClient, store: Store) -> None:
    """Commit latency is a summary, write errors a counter, the rest gauges."""
    response = await api.get("/v4/prometheus")
    types = {family.name: family.type for family in text_string_to_metric_families(response.text)}
    assert {name: kind for name, kind in types.items() if name.startswith("edgemq_store")} == {
        "edgemq_store_file_bytes": "gauge",
        "edgemq_store_pending_writes": "gauge",
        "edgemq_store_commit_seconds": "summary",
        "edgemq_store_last_commit_seconds": "gauge",
        "edgemq_store_write_errors": "counter",
        "edgemq_store_failing": "gauge",
    }


async def test_pending_writes_count_a_write_waiting_to_commit(api: httpx.AsyncClient, store: Store) -> None:
    """A write the store has not committed yet counts as pending in req 2 and in Prometheus, then no more."""
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the store's commit waits for this transaction
    try:
        waiting = store.write([RETAIN])
        assert (await v1(api, 2))["store"]["pending_writes"] == 1
        assert (await scrape(api))["edgemq_store_pending_writes"] == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await asyncio.wait_for(waiting, WAIT)
    assert (await scrape(api))["edgemq_store_pending_writes"] == 0


async def test_req2_store_object_reports_a_failed_write(api: httpx.AsyncClient, store: Store) -> None:
    """A write the database refuses shows as one write error with its message in req 2."""
    await fail_once(store)
    figures = (await v1(api, 2))["store"]
    assert figures["write_errors"] == 1
    assert str(store.path) in figures["last_error"]
    assert "NOT NULL" in figures["last_error"]


async def test_prometheus_shows_a_failing_store(api: httpx.AsyncClient, store: Store) -> None:
    """A write the database refuses makes edgemq_store_failing 1 and counts one write error."""
    await fail_once(store)
    samples = await scrape(api)
    assert (samples["edgemq_store_failing"], samples["edgemq_store_write_errors_total"]) == (1, 1)


async def test_a_successful_write_clears_the_failure(api: httpx.AsyncClient, store: Store) -> None:
    """After a failed write, a committed one sets failing to 0 and last_error to null; the error count stays."""
    await fail_once(store)
    await store.write([RETAIN])
    samples = await scrape(api)
    figures = (await v1(api, 2))["store"]
    assert (samples["edgemq_store_failing"], samples["edgemq_store_write_errors_total"]) == (0, 1)
    assert (figures["last_error"], figures["write_errors"], figures["commits"]) == (None, 1, 1)
