"""v4 broker, node and metrics endpoints."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.bridge_figures import bridge_metrics
from admin_api.context import ApiContext
from admin_api.process_stats import ProcessStats
from admin_api.store_figures import with_store
from admin_api.v4_common import V4Route

__all__ = ["broker_routes", "edgemq_version"]


@functools.cache
def edgemq_version() -> str:
    """The installed edgemq version (looked up once: it reads the package metadata)."""
    try:
        return version("edgemq")
    except PackageNotFoundError:
        return "unknown"


def _uptime(started_at: datetime) -> str:
    seconds = int((datetime.now(UTC) - started_at).total_seconds())
    return f"{seconds // 3600} Hours, {seconds % 3600 // 60} minutes, {seconds % 60} seconds"


def broker_routes(ctx: ApiContext, process: ProcessStats) -> list[V4Route]:
    """The route table rows of the broker endpoints."""

    async def brokers(request: Request) -> JSONResponse:
        return JSONResponse({"code": 0, "data": [{
            "datetime": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "node_status": "Running",
            "sysdescr": "edgemq",
            "uptime": _uptime(ctx.control.started_at),
            "version": edgemq_version(),
            "listeners": ctx.control.mqtt_urls,
        }]})  # fmt: skip

    async def nodes(request: Request) -> JSONResponse:
        return JSONResponse({"code": 0, "data": [{
            "connections": ctx.state.counts().sessions,
            "node_status": "Running",
            "uptime": _uptime(ctx.control.started_at),
            "version": edgemq_version(),
        }]})  # fmt: skip

    async def metrics(request: Request) -> JSONResponse:
        cpu, memory = process.read()
        stats, counts = ctx.state.stats(), ctx.state.counts()
        return JSONResponse(with_store({
            "code": 0,
            "metrics": bridge_metrics(ctx.state),
            "cpuinfo": f"{cpu:.2f}%",
            "memory": str(memory),
            "connections": counts.sessions,
            "connected": counts.connections,
            "subscriptions": counts.subscribers,
            "messages_received": stats.message_in,
            "messages_sent": stats.message_out,
            "messages_dropped": stats.message_drop,
        }, ctx.state))  # fmt: skip

    return [
        V4Route("/brokers", "list_brokers", "GET", "this broker: version, uptime, time, listeners", brokers),
        V4Route("/nodes", "list_nodes", "GET", "this node: sessions, version, uptime", nodes),
        V4Route("/metrics", "list_metrics", "GET", "counters, connections, CPU, memory, store, bridges", metrics),
    ]
