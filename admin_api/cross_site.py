"""Refusal of requests a web page on another site could make a browser send (spec section 2).

A browser that holds Basic credentials for the admin API sends them with any request a page
makes, and a page may send, without asking the server first (no CORS preflight), a POST whose
content type is ``text/plain``, ``multipart/form-data`` or
``application/x-www-form-urlencoded``. So every state-changing request under ``/api`` (any
method but GET, HEAD and OPTIONS):

- with ``Content-Type: text/plain`` or ``multipart/form-data`` is refused with 415/108;
- with an ``Origin`` header that names another scheme, host or port than the request (its
  scheme, its ``Host``, whose port defaults to the scheme's: 80 for http, 443 for https), or
  ``null``, is refused with 403/108; browsers send ``Origin`` with every cross-site POST, PUT
  and DELETE, whatever the content type. The scheme is https behind a TLS proxy on this host
  that sends ``X-Forwarded-Proto: https`` (uvicorn trusts it from 127.0.0.1 and ::1);
- with ``Sec-Fetch-Site: cross-site`` or ``same-site`` (which browsers send, curl does not)
  is refused with 403/108.

``application/x-www-form-urlencoded`` stays accepted because ``curl -d`` sends it, as NanoMQ's
examples do; its body is read as JSON like any other, and a forged one carries a foreign
``Origin``. No content type (``curl -X POST`` without ``-d``) and ``application/json`` are
accepted. Checked after authentication, before the body is read.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.codes import ResultCode
from admin_api.errors import ApiError, error_response

__all__ = ["CrossSiteGuard", "cross_site_refusal"]

log = logging.getLogger("edgemq.api")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_ONLY_TYPES = frozenset({"text/plain", "multipart/form-data"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_OTHER_SITES = frozenset({"cross-site", "same-site"})


def _origin_matches(origin: str, scheme: str, host: str) -> bool:
    """Whether ``origin`` names the scheme, host and port (the scheme's default if ``host`` gives
    none) the request was sent to."""
    try:
        seen = urlsplit(origin.strip().lower())
        own = urlsplit("//" + host.strip().lower())
        seen_port = seen.port or _DEFAULT_PORTS.get(seen.scheme)
        own_port = own.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number or out of range
        return False
    if seen.scheme != scheme or seen.scheme not in _DEFAULT_PORTS:
        return False
    return bool(seen.hostname) and seen.hostname == own.hostname and seen_port == own_port


def cross_site_refusal(method: str, scheme: str, headers: Headers) -> ApiError | None:
    """The 415 or 403 for a request a cross-site page could have sent over ``scheme``, else None."""
    if method.upper() in _SAFE_METHODS:
        return None
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type in _FORM_ONLY_TYPES:
        message = f"content type {media_type} is not accepted: send JSON (application/json)"
        return ApiError(415, ResultCode.PARAMETER_ERROR, message=message)
    origin = headers.get("origin")
    if origin is not None and not _origin_matches(origin, scheme, headers.get("host", "")):
        return ApiError(403, ResultCode.PARAMETER_ERROR, message="cross-site request refused (Origin is another site)")
    if headers.get("sec-fetch-site", "").strip().lower() in _OTHER_SITES:
        message = "cross-site request refused (Sec-Fetch-Site says another site)"
        return ApiError(403, ResultCode.PARAMETER_ERROR, message=message)
    return None


class CrossSiteGuard:
    """Answers 415 or 403 (see the module) for state-changing requests under ``/api``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            refusal = cross_site_refusal(scope["method"], scope.get("scheme", "http"), Headers(scope=scope))
            if refusal is not None:
                log.debug("admin API: %s %s refused: %s", scope["method"], path, refusal.message)
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
