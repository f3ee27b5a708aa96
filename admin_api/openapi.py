"""The OpenAPI 3.1 description of the admin API, built from the v4 route table (so it lists
exactly what ``GET /api/v4`` lists and the router serves) plus the v1 request envelope."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from admin_api.codes import ResultCode
from admin_api.v4_common import MAX_LIMIT, MAX_PAGE, V4Route

__all__ = ["COMMON_ERRORS", "V1_ERRORS", "openapi_document"]

COMMON_ERRORS: tuple[tuple[int, ResultCode], ...] = (
    (400, ResultCode.PARAMETER_ERROR),  # an unknown or repeated query parameter
    (401, ResultCode.WRONG_CREDENTIALS),
    (401, ResultCode.EMPTY_CREDENTIALS),
    (500, ResultCode.UNKNOWN_ERROR),
    (503, ResultCode.UNKNOWN_ERROR),  # the MQTT side is not running (the broker is stopping)
)
"""What any operation may answer besides its own errors."""

V1_ERRORS: tuple[tuple[int, ResultCode], ...] = (
    (400, ResultCode.INVALID_JSON),
    (400, ResultCode.MISSING_PARAMETER),
    (400, ResultCode.CONFIG_WRITE_FAILED),
    (404, ResultCode.PARAMETER_ERROR),
    (500, ResultCode.CONFIG_WRITE_FAILED),
)

V1_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["req", "seq"],
    "properties": {
        "req": {
            "type": "integer",
            "minimum": 0,
            "description": "2 statistics, 4 subscriptions, 5 clients, 10 stop or restart, "
            "11 read the configuration, 12 change it, 13 topic tree",
        },
        "seq": {"type": "integer", "minimum": 0, "description": "echoed in the answer"},
        "action": {"type": "string", "description": "req 10: stop or restart (any case)"},
        "data": {"type": "object", "description": "req 12: any part of req 11's answer"},
    },
}

_PATH_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_STATUS_TEXT = {400: "bad request", 401: "no or wrong credentials", 404: "not found", 500: "internal error"}


def _error_schema(codes: Iterable[ResultCode], v1: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"code": {"type": "integer", "enum": sorted({int(code) for code in codes})}}
    if v1:
        properties |= {"seq": {"type": "integer"}, "rep": {"type": "integer"}}
    properties["message"] = {"type": "string", "description": "what was wrong, for people"}
    return {"type": "object", "required": ["code"], "properties": properties}


def _responses(
    errors: Iterable[tuple[int, ResultCode]],
    media_type: str = "application/json",
    answer: Mapping[str, Any] | None = None,
    v1: bool = False,
) -> dict[str, dict[str, Any]]:
    ok_properties: dict[str, Any] = {"code": {"const": 0}}
    if v1:
        ok_properties |= {"seq": {"type": "integer"}, "rep": {"type": "integer"}}
    if answer is None:
        answer = {"type": "object", "required": ["code"], "properties": ok_properties}
    ok_content: dict[str, Any] = {media_type: {"schema": dict(answer)}}
    responses: dict[str, dict[str, Any]] = {"200": {"description": "done", "content": ok_content}}
    by_status: dict[int, set[ResultCode]] = defaultdict(set)
    for status, code in errors:
        by_status[status].add(code)
    for status in sorted(by_status):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "error"),
            "content": {"application/json": {"schema": _error_schema(by_status[status], v1)}},
        }
    return responses


def _parameters(route: V4Route) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        | ({"description": "may hold '/'"} if converter == "path" else {})
        for name, converter in _PATH_PARAMETER.findall(route.path)
    ]
    parameters += [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.params]
    if route.paged:
        parameters += [
            {"name": "_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
            {"name": "_limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        ]
    return parameters


def _operation(route: V4Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.name, "summary": route.descr}
    if parameters := _parameters(route):
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": dict(route.body)}}}
    operation["responses"] = _responses([*COMMON_ERRORS, *route.errors], route.media_type, route.answer)
    return operation


def _v1_operation(method: str) -> dict[str, Any]:
    return {
        "operationId": f"v1_{method}",
        "summary": "NanoMQ's v1 API: one request code per call",
        "requestBody": {"required": True, "content": {"application/json": {"schema": V1_REQUEST}}},
        "responses": _responses([*COMMON_ERRORS, *V1_ERRORS], v1=True),
    }


def openapi_document(prefix: str, routes: Sequence[V4Route], v1_methods: Iterable[str], version: str) -> dict[str, Any]:
    """OpenAPI 3.1 for ``routes`` (paths under ``prefix``) and ``/api/v1`` with ``v1_methods``."""
    paths: dict[str, dict[str, Any]] = {"/api/v1": {m.lower(): _v1_operation(m.lower()) for m in sorted(v1_methods)}}
    for route in routes:
        path = _PATH_PARAMETER.sub(r"{\1}", prefix + route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edgemq admin API",
            "version": version,
            "description": "NanoMQ's admin API (v1 and v4) as edgemq serves it. Every answer is JSON with a "
            "result code (docs/admin-api-spec.md), except the Prometheus text.",
        },
        "security": [{"basic": []}],
        "paths": paths,
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    }
