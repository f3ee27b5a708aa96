"""v1: ``POST /api/v1`` with ``{"req": N, "seq": S}`` (spec section 2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from admin_api.body import BodyTooLarge, InvalidJson, read_json
from admin_api.codes import ResultCode
from admin_api.config_api import change_config, control_action, run_in_loop, running_config
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.shapes import mqtt5_fields, topic_tree
from admin_api.store_figures import with_store

__all__ = ["v1_routes"]

log = logging.getLogger("edgemq.api")

Handler = Callable[[ApiContext, dict[str, Any]], Any]


def _stats(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    s = ctx.state.stats()
    counters = {
        "client_size": s.client_size,
        "message_in": s.message_in,
        "message_out": s.message_out,
        "message_drop": s.message_drop,
    }
    return with_store(counters, ctx.state)


def _subscriptions(ctx: ApiContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"client_id": entry.client_id, "subscriptions": [{"topic": t, "qos": q} for t, q in entry.subscriptions]}
        for entry in ctx.state.subscriptions()
    ]


def _clients(ctx: ApiContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "client_id": c.info.client_id,
            "username": c.info.username,
            "keepalive": c.info.keepalive,
            "protocol": c.info.protocol,
            "connect_status": int(c.connected),
            "message_receive": c.messages_received,
            **mqtt5_fields(c.info),
        }
        for c in ctx.state.clients()
    ]


def _topic_tree(ctx: ApiContext, body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return topic_tree(ctx.state, "client_id")


@dataclass(frozen=True)
class AfterAnswer:
    """A reply without ``data`` whose action runs once the answer has been sent."""

    action: Callable[[], None]


def _control(ctx: ApiContext, body: dict[str, Any]) -> AfterAnswer:
    if "action" not in body:
        raise ApiError(400, ResultCode.MISSING_PARAMETER, message="action is missing")
    return AfterAnswer(control_action(ctx, body["action"]))


def _read_config(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return running_config(ctx)


def _write_config(ctx: ApiContext, body: dict[str, Any]) -> dict[str, list[str]]:
    if "data" not in body:
        raise ApiError(400, ResultCode.MISSING_PARAMETER, message="data is missing")
    return change_config(ctx, body["data"])


HANDLERS: dict[int, Handler] = {
    2: _stats,
    4: _subscriptions,
    5: _clients,
    10: _control,
    11: _read_config,
    12: _write_config,
    13: _topic_tree,
}


def _is_count(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0


async def _parse(request: Request, max_body: int) -> tuple[dict[str, Any], int, int]:
    """The body, req and seq, or the error of the v1 error table."""
    try:
        body = await read_json(request, max_body)
    except BodyTooLarge:
        message = f"body larger than http_server.max_body ({max_body} bytes)"
        raise ApiError(400, ResultCode.PARAMETER_ERROR, seq=0, message=message) from None
    except InvalidJson:
        raise ApiError(400, ResultCode.INVALID_JSON, seq=0, message="body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, ResultCode.INVALID_JSON, seq=0, message="body is not a JSON object")
    req, seq = body.get("req"), body.get("seq")
    echo = seq if _is_count(seq) else 0
    for name in ("req", "seq"):
        if name not in body:
            raise ApiError(400, ResultCode.MISSING_PARAMETER, seq=echo, message=f"{name} is missing")
    if not _is_count(req) or not _is_count(seq):
        message = f"{'seq' if _is_count(req) else 'req'} must be a non-negative integer"
        raise ApiError(400, ResultCode.PARAMETER_ERROR, seq=echo, message=message)
    return body, req, seq


def v1_routes(ctx: ApiContext) -> list[Route]:
    """The v1 endpoint, bound to ``ctx``."""

    async def endpoint(request: Request) -> JSONResponse:
        body, req, seq = await _parse(request, ctx.settings.current.http_server.max_body)
        handler = HANDLERS.get(req)
        if handler is None:
            raise ApiError(404, ResultCode.PARAMETER_ERROR, seq=seq, rep=req, message=f"unknown req {req}")
        try:
            data = handler(ctx, body)
        except ApiError as error:
            raise ApiError(error.status, error.code, seq=seq, rep=req, message=error.message) from None
        except Exception:
            log.exception("req %d failed", req)
            raise ApiError(500, ResultCode.UNKNOWN_ERROR, seq=seq, rep=req, message="internal error") from None
        if isinstance(data, AfterAnswer):
            return JSONResponse(
                {"code": 0, "seq": seq, "rep": req}, background=BackgroundTask(run_in_loop, data.action)
            )
        return JSONResponse({"code": 0, "seq": seq, "rep": req, "data": data})

    return [Route("/api/v1", endpoint, methods=["POST"])]
