"""The admin API application factory."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.auth import AuthMiddleware
from admin_api.context import ApiContext
from admin_api.cross_site import CrossSiteGuard
from admin_api.dashboard import dashboard_routes
from admin_api.errors import exception_handlers
from admin_api.health import health_routes
from admin_api.v1 import v1_routes
from admin_api.v4 import v4_routes
from broker.config.settings import LiveSettings
from broker.control import BrokerControl
from broker.state import BrokerState

__all__ = ["create_app"]


class _IgnoreTrailingSlash:
    """Serves ``/api/v1/`` as ``/api/v1`` (the contract ignores a trailing slash).

    Only slashes written as ``/`` in the request are dropped: an encoded ``%2F`` is part of a
    path parameter (``DELETE /api/v4/clients/dev%2F`` kicks ``dev/``, not ``dev``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            raw: bytes = scope.get("raw_path") or path.encode()
            literal = len(raw) - len(raw.rstrip(b"/"))
            if literal:
                scope = {**scope, "path": path[:-literal] or "/"}
        await self.app(scope, receive, send)


def create_app(state: BrokerState, control: BrokerControl, settings: LiveSettings) -> Starlette:
    """A Starlette app serving the admin API from ``state``, configured by ``settings.current``."""
    ctx = ApiContext(state, control, settings)
    app = Starlette(
        routes=[*v1_routes(ctx), *v4_routes(ctx), *health_routes(ctx), *dashboard_routes()],
        middleware=[
            Middleware(_IgnoreTrailingSlash),
            Middleware(AuthMiddleware, settings=settings),
            Middleware(CrossSiteGuard),
        ],
        exception_handlers=exception_handlers,
    )
    app.router.redirect_slashes = False
    return app
