"""v4: NanoMQ's REST API under ``/api/v4`` (spec section 3), assembled from its surfaces.

One route table drives the router, the index (``GET /api/v4``) and the OpenAPI description
(``GET /api/v4/openapi.json``), so the three cannot disagree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from admin_api.context import ApiContext
from admin_api.openapi import openapi_document
from admin_api.process_stats import ProcessStats
from admin_api.prometheus import prometheus_endpoint
from admin_api.v1 import v1_routes
from admin_api.v4_bridges import bridge_routes
from admin_api.v4_broker import broker_routes, edgemq_version
from admin_api.v4_clients import client_routes
from admin_api.v4_common import V4Route, ok, query
from admin_api.v4_config import config_routes
from admin_api.v4_publish import publish_routes

__all__ = ["PREFIX", "v4_route_table", "v4_routes"]

PREFIX = "/api/v4"


def v4_route_table(ctx: ApiContext) -> list[V4Route]:
    """Every v4 endpoint, the index and the OpenAPI description included."""
    process = ProcessStats()

    async def list_endpoints(request: Request) -> Response:
        return ok(index)

    document: dict[str, Any] = {}  # made on first request: building it costs more than a broker start

    async def openapi(request: Request) -> Response:
        if not document:
            [v1] = v1_routes(ctx)
            document.update(openapi_document(PREFIX, table, (v1.methods or set()) - {"HEAD"}, edgemq_version()))
        return JSONResponse(document)

    table = [
        V4Route("", "list_endpoints", "GET", "this list", list_endpoints),
        *broker_routes(ctx, process),
        *client_routes(ctx),
        *publish_routes(ctx),
        *config_routes(ctx),
        *bridge_routes(ctx),
        prometheus_endpoint(ctx, process),
        V4Route("/openapi.json", "openapi", "GET", "this API as OpenAPI 3.1", openapi,
                answer={"type": "object", "required": ["openapi", "info", "paths"]}),
    ]  # fmt: skip
    index = [{"path": r.path or "/", "name": r.name, "method": r.method, "descr": r.descr} for r in table]
    return table


def v4_routes(ctx: ApiContext) -> list[Route]:
    """One Route per path of the table, dispatching on the method (others get 405)."""
    by_path: dict[str, dict[str, V4Route]] = defaultdict(dict)
    for row in v4_route_table(ctx):
        by_path[row.path][row.method] = row
    return [_route(PREFIX + path, rows) for path, rows in by_path.items()]


def _route(path: str, rows: dict[str, V4Route]) -> Route:
    async def dispatch(request: Request) -> Response:
        row = rows["GET" if request.method == "HEAD" else request.method]
        query(request, row.params, row.paged)
        result: Response = await row.endpoint(request)
        return result

    route = Route(path, dispatch, methods=list(rows))
    # A path parameter may hold line breaks (a client id may): "." must match them, and "$"
    # must not stop before a final one ("/clients/abc%0A" is not client "abc").
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route
