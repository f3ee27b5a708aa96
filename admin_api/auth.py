"""HTTP Basic authentication of everything under ``/api``, checked before any body is read."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.codes import ResultCode
from admin_api.errors import ApiError, error_response
from admin_api.prometheus import PROMETHEUS_PATH
from broker.settings import LiveSettings

__all__ = ["AuthMiddleware", "check_basic_auth"]

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="edgemq"'}


def check_basic_auth(header: str | None, username: str, password: str) -> ResultCode | None:
    """None when ``header`` carries the right credentials, else the result code to answer."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token:
        return ResultCode.EMPTY_CREDENTIALS
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ResultCode.WRONG_CREDENTIALS
    given_user, colon, given_password = decoded.partition(":")
    if not colon:
        return ResultCode.WRONG_CREDENTIALS
    if not given_user or not given_password:
        return ResultCode.EMPTY_CREDENTIALS
    # compare both, always, in constant time
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return None if user_ok & password_ok else ResultCode.WRONG_CREDENTIALS


def _needs_auth(path: str, auth_type: str, prometheus_auth: bool) -> bool:
    if auth_type == "no_auth" or not (path == "/api" or path.startswith("/api/")):
        return False
    return prometheus_auth or path.rstrip("/") != PROMETHEUS_PATH


class AuthMiddleware:
    """Answers 401 with code 104 or 103 for unauthenticated requests to ``/api``.

    The credentials and ``auth_type`` are read from the live settings on every request.
    """

    def __init__(self, app: ASGIApp, settings: LiveSettings) -> None:
        self.app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        http = self._settings.current.http_server
        if scope["type"] == "http" and _needs_auth(path, http.auth_type, http.prometheus_auth):
            failure = check_basic_auth(Headers(scope=scope).get("authorization"), http.username, http.password)
            if failure is not None:
                await error_response(ApiError(401, failure), headers=_CHALLENGE)(scope, receive, send)
                return
        await self.app(scope, receive, send)
