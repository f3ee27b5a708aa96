"""``/api/v4/prometheus``: NanoMQ's metric names and edgemq's store and bridge metrics, exposed by prometheus-client
from the live state."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from admin_api.bridge_figures import BridgeCollector
from admin_api.context import ApiContext
from admin_api.process_stats import ProcessStats
from admin_api.store_figures import StoreCollector
from admin_api.v4_common import V4Route

__all__ = ["PROMETHEUS_PATH", "prometheus_endpoint"]

PROMETHEUS_PATH = "/api/v4/prometheus"


class NanoMQCollector(Collector):
    """Reads the shared state at every scrape; gauges only, so no ``_total`` suffix is added."""

    def __init__(self, ctx: ApiContext, process: ProcessStats) -> None:
        self._ctx = ctx
        self._process = process

    def collect(self) -> Iterator[Metric]:
        """One sample per NanoMQ metric."""
        state = self._ctx.state
        now, peak, stats = state.counts(), state.peaks(), state.stats()
        cpu, memory = self._process.read()
        values = [
            ("nanomq_connections_count", "connected clients", now.connections),
            ("nanomq_connections_max", "peak of connected clients", peak.connections),
            ("nanomq_sessions_count", "sessions, connected or offline", now.sessions),
            ("nanomq_sessions_max", "peak of sessions", peak.sessions),
            ("nanomq_topics_count", "distinct topic filters subscribed to", now.topics),
            ("nanomq_topics_max", "peak of distinct topic filters", peak.topics),
            ("nanomq_subscribers_count", "subscriptions", now.subscribers),
            ("nanomq_subscribers_max", "peak of subscriptions", peak.subscribers),
            ("nanomq_messages_received", "messages accepted (v1 req 2 message_in)", stats.message_in),
            ("nanomq_messages_sent", "messages routed to subscriptions (message_out)", stats.message_out),
            ("nanomq_messages_dropped", "messages dropped (message_drop)", stats.message_drop),
            ("nanomq_memory_usage", "resident memory in bytes", memory),
            ("nanomq_memory_usage_max", "peak resident memory in bytes", self._process.memory_max),
            ("nanomq_cpu_usage", "CPU percent since the previous reading", cpu),
            ("nanomq_cpu_usage_max", "peak CPU percent", self._process.cpu_max),
        ]
        for name, documentation, value in values:
            yield GaugeMetricFamily(name, documentation, value=value)


def prometheus_endpoint(ctx: ApiContext, process: ProcessStats) -> V4Route:
    """The route table row of the Prometheus text exposition."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NanoMQCollector(ctx, process))
    registry.register(StoreCollector(ctx.state))
    registry.register(BridgeCollector(ctx.state))

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return V4Route("/prometheus", "prometheus", "GET", "Prometheus: NanoMQ names, edgemq_store_*, edgemq_bridge_*",
                   prometheus, media_type="text/plain", answer={"type": "string"})  # fmt: skip
