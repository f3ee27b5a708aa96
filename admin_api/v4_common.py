"""What every v4 endpoint shares: the route table's rows, answers, query parameters, JSON
bodies and paging."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.body import BodyTooLarge, read_body
from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.slices import decode_json

__all__ = [
    "MAX_LIMIT",
    "MAX_PAGE",
    "PAGING",
    "Endpoint",
    "V4Route",
    "bad_parameter",
    "json_body",
    "ok",
    "ok_paged",
    "paged",
    "query",
]

T = TypeVar("T")
Endpoint = Callable[[Request], Any]
MAX_LIMIT = 10_000
MAX_PAGE = 2**31 - 1
PAGING = ("_page", "_limit")


class V4Route(NamedTuple):
    """One row of the v4 route table: what ``GET /api/v4`` lists, what the router serves (the
    query parameters are checked before ``endpoint`` runs) and what ``/api/v4/openapi.json``
    describes."""

    path: str
    name: str
    method: str
    descr: str
    endpoint: Endpoint
    params: tuple[str, ...] = ()
    """Query parameters the endpoint accepts; ``paged`` adds ``_page`` and ``_limit``."""
    paged: bool = False
    body: Mapping[str, Any] | None = None
    """JSON Schema of the request body, for endpoints that read one."""
    errors: tuple[tuple[int, ResultCode], ...] = ()
    """(HTTP status, result code) the endpoint answers beyond those every endpoint may."""
    media_type: str = "application/json"
    answer: Mapping[str, Any] | None = None
    """JSON Schema of the 200 body, where it is not ``{"code": 0, "data": ...}``."""


def ok(data: Any = None, **extra: Any) -> JSONResponse:
    """``{"code": 0, "data": ...}`` plus any extra top-level fields."""
    body: dict[str, Any] = {"code": 0}
    if data is not None:
        body["data"] = data
    body.update(extra)
    return JSONResponse(body)


def bad_parameter(message: str | None = None) -> ApiError:
    """400 with code 108."""
    return ApiError(400, ResultCode.PARAMETER_ERROR, message=message)


def query(request: Request, allowed: Sequence[str], paging: bool = False) -> dict[str, str]:
    """The query parameters; any other name, or one given twice, is 400/108."""
    names = set(allowed) | (set(PAGING) if paging else set())
    params = dict(request.query_params)
    unknown = sorted(set(params) - names)
    if unknown:
        raise bad_parameter(f"unknown query parameter {unknown[0]!r}")
    if len(request.query_params.multi_items()) != len(params):
        raise bad_parameter("a query parameter is given more than once")
    return params


async def json_body(request: Request, ctx: ApiContext) -> Any:
    """The JSON body (an array decoded in time slices): 400/109 if it is not JSON, 400/108 if it
    is too large."""
    max_body = ctx.settings.current.http_server.max_body
    try:
        raw = await read_body(request, max_body)
    except BodyTooLarge:
        raise bad_parameter(f"body larger than http_server.max_body ({max_body} bytes)") from None
    try:
        return await decode_json(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, ResultCode.INVALID_JSON, message="body is not valid JSON") from None


def _whole_number(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """``params[name]`` as 1 to ``maximum`` written in ASCII digits, else 400/108."""
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(maximum))) or not 1 <= int(text) <= maximum:
        raise bad_parameter(f"{name} must be a whole number from 1 to {maximum}")
    return int(text)


def paged(params: Mapping[str, str], items: Sequence[T]) -> tuple[list[T], dict[str, int] | None]:
    """One page of ``items``, and the ``meta`` object when ``_page`` or ``_limit`` was given."""
    page = _whole_number(params, "_page", 1, MAX_PAGE)
    limit = _whole_number(params, "_limit", MAX_LIMIT, MAX_LIMIT)
    chosen = list(items[(page - 1) * limit : page * limit])
    if "_page" in params or "_limit" in params:
        return chosen, {"page": page, "limit": limit, "count": len(items)}
    return chosen, None


def ok_paged(
    params: Mapping[str, str], items: Sequence[Any], shape: Callable[[Any], Any] = lambda x: x
) -> JSONResponse:
    """One page of ``items`` (each passed through ``shape``), with ``meta`` when paging was asked."""
    page, meta = paged(params, items)
    return ok([shape(item) for item in page], **({"meta": meta} if meta else {}))
