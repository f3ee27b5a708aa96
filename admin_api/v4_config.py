"""v4 configuration, live reload and control; the logic is shared with v1 (config_api)."""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.codes import ResultCode
from admin_api.config_api import control_action, refused_change, run_in_loop, running_config
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.v4_common import V4Route, bad_parameter, json_body, ok, query
from broker.config.changes import live_view
from broker.config.source import ConfigError

__all__ = ["config_routes"]

_RELOAD_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "description": "any part of GET /reload's answer"}},
}


def config_routes(ctx: ApiContext) -> list[V4Route]:
    """The route table rows of the configuration endpoints."""

    async def configuration(request: Request) -> JSONResponse:
        query(request, ())
        return ok(running_config(ctx))

    async def configuration_section(request: Request) -> JSONResponse:
        query(request, ())
        section = running_config(ctx).get(request.path_params["section"])
        if section is None:
            raise ApiError(404, ResultCode.RPC_ERROR, message="no such configuration section")
        return ok(section)

    async def read_reload(request: Request) -> JSONResponse:
        query(request, ())
        return ok(live_view(ctx.settings.current))

    async def reload(request: Request) -> JSONResponse:
        query(request, ())
        body = await json_body(request, ctx)
        if not isinstance(body, dict) or "data" not in body:
            raise ApiError(400, ResultCode.MISSING_PARAMETER, message="data is missing")
        if not isinstance(body["data"], dict):
            raise bad_parameter("data: expected an object of settings")
        try:
            ctx.control.apply_live(body["data"])
        except ConfigError as exc:
            raise refused_change(exc) from None
        return ok(live_view(ctx.settings.current))

    async def control(request: Request) -> JSONResponse:
        query(request, ())
        action = request.path_params["action"]
        if action.lower() not in ("stop", "restart"):
            raise ApiError(404, ResultCode.RPC_ERROR, message="action must be stop or restart")
        return JSONResponse({"code": 0}, background=BackgroundTask(run_in_loop, control_action(ctx, action)))

    body_errors = ((400, ResultCode.MISSING_PARAMETER), (400, ResultCode.INVALID_JSON))
    return [
        V4Route("/configuration", "get_configuration", "GET", "the running configuration (secrets masked)",
                configuration),
        V4Route("/configuration/{section}", "get_configuration_section", "GET", "one section of it",
                configuration_section, errors=((404, ResultCode.RPC_ERROR),)),
        V4Route("/reload", "get_reload", "GET", "the settings that change without a restart", read_reload),
        V4Route("/reload", "reload", "POST", "change those settings now (not written to the file)", reload,
                body=_RELOAD_BODY, errors=body_errors),
        V4Route("/ctrl/{action}", "control", "POST", "stop or restart, answering first", control,
                errors=((404, ResultCode.RPC_ERROR),)),
    ]  # fmt: skip
