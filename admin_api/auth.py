"""HTTP Basic authentication of everything under ``/api`` and ``/dashboard``, checked before any body is read."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.codes import ResultCode
from admin_api.dashboard import DASHBOARD_PATH
from admin_api.errors import ApiError, error_response
from admin_api.prometheus import PROMETHEUS_PATH
from broker.config.settings import LiveSettings

__all__ = ["AuthMiddleware", "basic_auth_failure"]

log = logging.getLogger("edgemq.api")

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="edgemq"'}


def basic_auth_failure(header: str | None, username: str, password: str) -> ApiError | None:
    """None when ``header`` carries the right credentials, else the 401 to answer.

    Any malformed header (another scheme, bad base64, non-ASCII or non-UTF-8 bytes, no colon)
    is a refusal like wrong credentials, never an exception.
    """
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if not header:
        return _refusal(ResultCode.EMPTY_CREDENTIALS, "Basic credentials required")
    if scheme.lower() != "basic" or not token:
        return _refusal(ResultCode.EMPTY_CREDENTIALS, "Basic credentials required (Authorization: Basic ...)")
    try:
        decoded = base64.b64decode(token.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error):  # UnicodeEncodeError: the header held non-ASCII bytes
        return _refusal(ResultCode.WRONG_CREDENTIALS, "malformed Basic credentials")
    given_user, colon, given_password = decoded.partition(":")
    if not colon:
        return _refusal(ResultCode.WRONG_CREDENTIALS, "malformed Basic credentials")
    if not given_user or not given_password:
        return _refusal(ResultCode.EMPTY_CREDENTIALS, "empty username or password")
    # compare both, always, in constant time
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return None if user_ok & password_ok else _refusal(ResultCode.WRONG_CREDENTIALS, "wrong username or password")


def _refusal(code: ResultCode, message: str) -> ApiError:
    return ApiError(401, code, message=message)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _needs_auth(path: str, auth_type: str, prometheus_auth: bool) -> bool:
    if auth_type == "no_auth" or not (_under(path, "/api") or _under(path, DASHBOARD_PATH)):
        return False
    return prometheus_auth or path.rstrip("/") != PROMETHEUS_PATH


class AuthMiddleware:
    """Answers 401 with code 104 or 103 for unauthenticated requests to ``/api`` and the dashboard.

    The credentials and ``auth_type`` are read from the live settings on every request.
    """

    def __init__(self, app: ASGIApp, settings: LiveSettings) -> None:
        self.app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        http = self._settings.current.http_server
        if scope["type"] == "http" and _needs_auth(path, http.auth_type, http.prometheus_auth):
            failure = basic_auth_failure(Headers(scope=scope).get("authorization"), http.username, http.password)
            if failure is not None:
                log.debug("admin API: %s %s refused: %s", scope.get("method"), path, failure.message)
                await error_response(failure, headers=_CHALLENGE)(scope, receive, send)
                return
        await self.app(scope, receive, send)
