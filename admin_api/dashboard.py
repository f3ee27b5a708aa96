"""The browser dashboard: one page and its static files, served behind the API's Basic auth.

The page is plain HTML, CSS and JavaScript shipped as package data (``dashboard_static/``); it
polls the v4 API with ``fetch`` from the same origin, so the browser sends the Basic
credentials it asked for when the page loaded and the API's cross-site rules (cross_site.py)
let its DELETE and POST requests through while refusing other sites'. ``/`` redirects here.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["DASHBOARD_PATH", "dashboard_routes"]

DASHBOARD_PATH = "/dashboard"
_FILES = Path(__file__).resolve().parent / "dashboard_static"
# Scripts, styles and requests from this origin only; no framing (the page has kick and restart buttons).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer can make Firefox send Origin: null
    "Cache-Control": "no-cache",
}


class _DashboardFiles(StaticFiles):
    """The page's files, with the page's headers (revalidated on every load, never sniffed)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_PAGE_HEADERS)
        return response


def dashboard_routes() -> list[BaseRoute]:
    """``/`` (a redirect), ``/dashboard`` (the page) and ``/dashboard/static/...`` (its files)."""

    async def root(request: Request) -> Response:
        return RedirectResponse(DASHBOARD_PATH, status_code=303)

    async def page(request: Request) -> Response:
        return FileResponse(_FILES / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    return [
        Route("/", root, methods=["GET"]),
        Route(DASHBOARD_PATH, page, methods=["GET"]),
        Mount(DASHBOARD_PATH + "/static", _DashboardFiles(directory=_FILES), name="dashboard_static"),
    ]
