"""v4: NanoMQ's REST API under ``/api/v4`` (spec section 3), assembled from its surfaces."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin_api.context import ApiContext
from admin_api.process_stats import ProcessStats
from admin_api.prometheus import prometheus_endpoint
from admin_api.v4_broker import broker_routes
from admin_api.v4_clients import client_routes
from admin_api.v4_common import ok, query
from admin_api.v4_config import config_routes
from admin_api.v4_publish import publish_routes

__all__ = ["PREFIX", "v4_routes"]

PREFIX = "/api/v4"
Endpoint = Callable[[Request], Any]


def v4_routes(ctx: ApiContext) -> list[Route]:
    """Every v4 endpoint, one Route per path dispatching on the method (others get 405)."""
    process = ProcessStats()
    table: list[tuple[str, str, str, str, Any]] = [
        *broker_routes(ctx, process),
        *client_routes(ctx),
        *publish_routes(ctx),
        *config_routes(ctx),
        prometheus_endpoint(ctx, process),
    ]
    index = [{"path": "/", "name": "list_endpoints", "method": "GET", "descr": "this list"}]
    index += [{"path": path, "name": name, "method": method, "descr": descr} for path, name, method, descr, _ in table]

    async def list_endpoints(request: Request) -> Response:
        query(request, ())
        return ok(index)

    by_path: dict[str, dict[str, Endpoint]] = defaultdict(dict)
    by_path[""]["GET"] = list_endpoints
    for path, _, method, _, endpoint in table:
        by_path[path][method] = endpoint
    return [_route(PREFIX + path, handlers) for path, handlers in by_path.items()]


def _route(path: str, handlers: dict[str, Endpoint]) -> Route:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        result: Response = await handlers[method](request)
        return result

    return Route(path, dispatch, methods=list(handlers))
