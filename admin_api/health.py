"""Health endpoints outside the API prefix, without authentication (spec section 4)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from admin_api.context import ApiContext

__all__ = ["health_routes"]


def health_routes(ctx: ApiContext) -> list[Route]:
    """``/healthz`` (the process serves HTTP) and ``/readyz`` (MQTT accepts connections)."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        if ctx.control.mqtt_ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
