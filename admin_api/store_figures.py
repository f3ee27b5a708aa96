"""The embedded store's figures: the ``store`` object of req 2 and /metrics, and its Prometheus metrics.

Both are absent while persistence is off (``BrokerState.store_stats()`` is None): req 2 then
keeps NanoMQ's four fields exactly, and a scrape has no ``edgemq_store_*`` series, so a figure
that reads 0 always means a store that is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from broker.persistence.store import StoreStats
from broker.state import BrokerState

__all__ = ["StoreCollector", "store_object", "with_store"]


def store_object(stats: StoreStats) -> dict[str, Any]:
    """The JSON ``store`` object; each key named here so the contract does not follow StoreStats by accident."""
    return {
        "path": stats.path,
        "file_bytes": stats.file_bytes,
        "pending_writes": stats.pending_writes,
        "commits": stats.commits,
        "commit_seconds_total": stats.commit_seconds_total,
        "last_commit_seconds": stats.last_commit_seconds,
        "write_errors": stats.write_errors,
        "last_error": stats.last_error,
    }


def with_store(answer: dict[str, Any], state: BrokerState) -> dict[str, Any]:
    """``answer`` plus ``"store"`` while persistence is on, ``answer`` unchanged otherwise."""
    stats = state.store_stats()
    if stats is not None:
        answer["store"] = store_object(stats)
    return answer


class StoreCollector(Collector):
    """``edgemq_store_*`` metrics read at every scrape (edgemq's own names: NanoMQ has none for this)."""

    def __init__(self, state: BrokerState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """The store's samples, or none while persistence is off."""
        stats = self._state.store_stats()
        if stats is None:
            return
        yield GaugeMetricFamily("edgemq_store_file_bytes", "the store's file and its write-ahead log, in bytes",
                                value=stats.file_bytes)  # fmt: skip
        yield GaugeMetricFamily("edgemq_store_pending_writes", "write batches not committed yet",
                                value=stats.pending_writes)  # fmt: skip
        yield SummaryMetricFamily("edgemq_store_commit_seconds", "time spent committing transactions",
                                  count_value=stats.commits, sum_value=stats.commit_seconds_total)  # fmt: skip
        yield GaugeMetricFamily("edgemq_store_last_commit_seconds", "how long the latest commit took",
                                value=stats.last_commit_seconds)  # fmt: skip
        yield CounterMetricFamily("edgemq_store_write_errors", "write batches that could not be committed",
                                  value=stats.write_errors)  # fmt: skip
        yield GaugeMetricFamily("edgemq_store_failing", "1 while the latest commit failed, 0 once one succeeds",
                                value=int(stats.last_error is not None))  # fmt: skip
