"""One exception type for API errors and the handlers that render every error as JSON."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from admin_api.codes import ResultCode
from broker.control import MqttUnavailable
from broker.persistence.store import StoreError

__all__ = ["ApiError", "error_response", "exception_handlers"]

log = logging.getLogger("edgemq.api")


class ApiError(Exception):
    """An error answer: HTTP status, result code, for v1 the request's ``seq``/``req``, and a
    short human ``message`` saying what was wrong."""

    def __init__(
        self,
        status: int,
        code: ResultCode,
        *,
        seq: int | None = None,
        rep: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code.name}" + (f": {message}" if message else ""))
        self.status = status
        self.code = code
        self.seq = seq
        self.rep = rep
        self.message = message


def error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON body of an error: NanoMQ's keys in the order code, seq, rep, then ``message``."""
    body: dict[str, int | str] = {"code": int(error.code)}
    if error.seq is not None:
        body["seq"] = error.seq
    if error.rep is not None:
        body["rep"] = error.rep
    if error.message:
        body["message"] = error.message
    return JSONResponse(body, status_code=error.status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed here (allowed: {allowed})"
    else:
        message = exc.detail
    return error_response(ApiError(exc.status_code, ResultCode.UNKNOWN_ERROR, message=message), headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=400)  # nobody reads it


async def _mqtt_unavailable(request: Request, exc: Exception) -> Response:
    log.debug("%s %s while the MQTT side is not running", request.method, request.url.path)
    error = ApiError(503, ResultCode.UNKNOWN_ERROR, message="the MQTT side is not running (the broker is stopping)")
    return error_response(error)


async def _store_failed(request: Request, exc: Exception) -> Response:
    # the store logged its ERROR already; what the request changed in memory stands, not on disk
    message = f"could not be made durable (send it again once the store is written again): {exc}"
    return error_response(ApiError(503, ResultCode.UNKNOWN_ERROR, message=message))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("internal error serving %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, ResultCode.UNKNOWN_ERROR, message="internal error"))


exception_handlers = {
    ApiError: _api_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    MqttUnavailable: _mqtt_unavailable,
    StoreError: _store_failed,
    Exception: _unexpected_error,
}
