"""What every v4 endpoint shares: answers, query parameters, JSON bodies and paging."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.body import BodyTooLarge, InvalidJson, read_json
from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError

__all__ = ["MAX_LIMIT", "bad_parameter", "json_body", "ok", "ok_paged", "paged", "query"]

T = TypeVar("T")
MAX_LIMIT = 10_000
_PAGING = ("_page", "_limit")


def ok(data: Any = None, **extra: Any) -> JSONResponse:
    """``{"code": 0, "data": ...}`` plus any extra top-level fields."""
    body: dict[str, Any] = {"code": 0}
    if data is not None:
        body["data"] = data
    body.update(extra)
    return JSONResponse(body)


def bad_parameter() -> ApiError:
    """400 with code 108."""
    return ApiError(400, ResultCode.PARAMETER_ERROR)


def query(request: Request, allowed: Sequence[str], paging: bool = False) -> dict[str, str]:
    """The query parameters; any other name is 400/108."""
    names = set(allowed) | (set(_PAGING) if paging else set())
    params = dict(request.query_params)
    if set(params) - names or len(request.query_params.multi_items()) != len(params):
        raise bad_parameter()
    return params


async def json_body(request: Request, ctx: ApiContext) -> Any:
    """The JSON body: 400/109 if it is not JSON, 400/108 if it is too large."""
    try:
        return await read_json(request, ctx.settings.current.http_server.max_body)
    except BodyTooLarge:
        raise bad_parameter() from None
    except InvalidJson:
        raise ApiError(400, ResultCode.INVALID_JSON) from None


def _positive(text: str | None, default: int, maximum: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise bad_parameter()
    return int(text)


def paged(params: dict[str, str], items: Sequence[T]) -> tuple[list[T], dict[str, int] | None]:
    """One page of ``items``, and the ``meta`` object when ``_page`` or ``_limit`` was given."""
    page = _positive(params.get("_page"), 1, 1 << 31)
    limit = _positive(params.get("_limit"), MAX_LIMIT, MAX_LIMIT)
    chosen = list(items[(page - 1) * limit : page * limit])
    if "_page" in params or "_limit" in params:
        return chosen, {"page": page, "limit": limit, "count": len(items)}
    return chosen, None


def ok_paged(params: dict[str, str], items: Sequence[Any], shape: Callable[[Any], Any] = lambda x: x) -> JSONResponse:
    """One page of ``items`` (each passed through ``shape``), with ``meta`` when paging was asked."""
    page, meta = paged(params, items)
    return ok([shape(item) for item in page], **({"meta": meta} if meta else {}))
