"""The running bridges' figures: the ``metrics`` list of /api/v4/metrics and ``edgemq_bridge_*`` Prometheus series.

Both follow ``BrokerState.bridges()``: with no bridge running the list is empty and a scrape has
no ``edgemq_bridge_*`` series, so a figure always belongs to a bridge that runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.bridges.bridge import BridgeStats
from broker.state import BrokerState

__all__ = ["BridgeCollector", "bridge_figures", "bridge_metrics"]

_Series = list[tuple[str, str, Callable[[BridgeStats], float]]]


def bridge_figures(stats: BridgeStats) -> dict[str, Any]:
    """A bridge's state fields as the API shows them (each key named here, not taken from BridgeStats)."""
    return {
        "state": stats.state,
        "queued": stats.queued,
        "in_flight": stats.in_flight,
        "oldest_queued_age_s": round(stats.oldest_queued_seconds, 3),
        "forwarded": stats.forwarded,
        "received": stats.received,
        "dropped": stats.dropped,
        "last_error": stats.last_error,
    }


def bridge_metrics(state: BrokerState) -> list[dict[str, Any]]:
    """The ``metrics`` list of /api/v4/metrics: one object per running bridge."""
    return [{"bridge": stats.name, **bridge_figures(stats)} for stats in state.bridges()]


class BridgeCollector(Collector):
    """``edgemq_bridge_*`` series labelled ``bridge``, read at every scrape (NanoMQ has none for this)."""

    def __init__(self, state: BrokerState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """One sample per running bridge in each family; no family while no bridge runs."""
        bridges = self._state.bridges()
        if not bridges:
            return
        gauges: _Series = [
            ("edgemq_bridge_connected", "1 while the link to the upstream is up and sending, else 0",
             lambda b: int(b.state == "connected")),
            ("edgemq_bridge_queued", "messages waiting for the upstream's acknowledgement", lambda b: b.queued),
            ("edgemq_bridge_in_flight", "messages sent upstream and not acknowledged yet", lambda b: b.in_flight),
            ("edgemq_bridge_oldest_queued_seconds", "age of the oldest queued message",
             lambda b: b.oldest_queued_seconds),
        ]  # fmt: skip
        counters: _Series = [
            ("edgemq_bridge_forwarded", "messages the upstream acknowledged", lambda b: b.forwarded),
            ("edgemq_bridge_received", "messages from the upstream published locally", lambda b: b.received),
            ("edgemq_bridge_dropped", "messages not forwarded (queue full or topic not mappable)",
             lambda b: b.dropped),
        ]  # fmt: skip
        for name, documentation, read in gauges:
            gauge = GaugeMetricFamily(name, documentation, labels=["bridge"])
            for stats in bridges:
                gauge.add_metric([stats.name], read(stats))
            yield gauge
        for name, documentation, read in counters:
            counter = CounterMetricFamily(name, documentation, labels=["bridge"])
            for stats in bridges:
                counter.add_metric([stats.name], read(stats))
            yield counter
