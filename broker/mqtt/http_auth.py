"""NanoMQ's ``auth.http_auth``: an HTTP server decides CONNECTs, superusers and topic access.

Requests are made with httpx on the event loop (never blocking it), each within
``http_auth.timeout``. A 2xx answer allows, a 2xx answer whose body is ``ignore`` abstains
(None), anything else refuses, and so does a server that cannot be reached: a fault fails
closed. ACL answers are kept per client for ``auth.cache.ttl`` (at most ``auth.cache.max_size``
topics each), as NanoMQ's ACL cache does, in the connection's ``ClientAccess``.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from broker.config.settings import Auth, HttpAuth, HttpRequest

__all__ = ["Access", "ClientAccess", "ClientFacts", "HttpAuthenticator"]

log = logging.getLogger("edgemq.mqtt")

Access = Literal[1, 2]
"""NanoMQ's ``%A``: 1 subscribe, 2 publish."""


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What a request may carry about the client (the placeholders of ``HttpRequest.params``)."""

    client_id: str
    username: str | None
    password: str | None
    address: str | None
    port: int | None


@dataclass
class ClientAccess:
    """What the server said about one connection: superuser or not, and acl_req's answers kept."""

    superuser: bool = False
    answers: OrderedDict[tuple[Access, str], tuple[bool | None, float]] = field(default_factory=OrderedDict)
    """(access, topic) -> (verdict, when it expires), oldest first."""


def _fill(template: str, client: ClientFacts, access: Access | None, topic: str | None) -> str:
    """``template`` with its placeholders replaced (``%%`` stays a percent sign)."""
    values = {
        "u": client.username or "",
        "c": client.client_id,
        "P": client.password or "",
        "a": client.address or "",
        "p": str(client.port or ""),
        "r": "mqtt",
        "A": str(access or ""),
        "t": topic or "",
        "m": "",
        "C": "",
        "d": "",
        "%": "%",
    }
    out: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char == "%" and index + 1 < len(template) and template[index + 1] in values:
            out.append(values[template[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _ssl_context(settings: HttpAuth) -> ssl.SSLContext | bool:
    tls = settings.ssl
    if not tls.enable:
        return True  # https:// URLs are verified against the system's CAs
    context = ssl.create_default_context(cafile=tls.cacertfile)
    if not tls.verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certfile:
        context.load_cert_chain(tls.certfile, tls.keyfile)
    return context


class HttpAuthenticator:
    """Asks the server ``auth.http_auth`` names (read live: a change applies to the next check)."""

    def __init__(self, auth_settings: Callable[[], Auth]) -> None:
        self._auth_settings = auth_settings
        self._client: httpx.AsyncClient | None = None
        self._client_for: HttpAuth | None = None

    @property
    def settings(self) -> HttpAuth | None:
        """The ``http_auth`` section in effect (None: not configured or not enabled)."""
        settings = self._auth_settings().http_auth
        return settings if settings is not None and settings.enable else None

    @property
    def checks_topics(self) -> bool:
        """Whether PUBLISH and SUBSCRIBE are asked about (``acl_req`` is configured)."""
        settings = self.settings
        return settings is not None and settings.acl_req is not None

    async def authenticate(self, client: ClientFacts, known: ClientAccess) -> bool | None:
        """The server's verdict on a CONNECT (None: no ``auth_req``, or it abstained); a client it
        allows is then asked about as a superuser (``super_req``), noted in ``known``."""
        settings = self.settings
        if settings is None or settings.auth_req is None:
            return None
        verdict = await self._ask(settings, settings.auth_req, client, None, None)
        if verdict and settings.super_req is not None:
            known.superuser = bool(await self._ask(settings, settings.super_req, client))
        return verdict

    async def allowed(self, client: ClientFacts, known: ClientAccess, access: Access, topic: str) -> bool | None:
        """The server's verdict on a PUBLISH (2) or SUBSCRIBE (1) of ``topic`` (None: no
        ``acl_req``, a superuser, or it abstained), kept in ``known`` for ``auth.cache.ttl``."""
        settings = self.settings
        if settings is None or settings.acl_req is None or known.superuser:
            return None
        cache_settings = self._auth_settings().cache
        cache = known.answers
        now = time.monotonic()
        cached = cache.get((access, topic))
        if cached is not None and cached[1] > now:
            cache.move_to_end((access, topic))
            return cached[0]
        verdict = await self._ask(settings, settings.acl_req, client, access, topic)
        cache[(access, topic)] = (verdict, now + cache_settings.ttl)
        while len(cache) > cache_settings.max_size:
            cache.popitem(last=False)
        return verdict

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _http(self, settings: HttpAuth) -> httpx.AsyncClient:
        """One pool for the current settings (made again when ``http_auth`` changes)."""
        if self._client is None or self._client_for != settings:
            await self.aclose()
            self._client = httpx.AsyncClient(
                verify=_ssl_context(settings),
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                limits=httpx.Limits(max_connections=settings.pool_size),
                trust_env=False,
            )
            self._client_for = settings
        return self._client

    async def _ask(
        self,
        settings: HttpAuth,
        request: HttpRequest,
        client: ClientFacts,
        access: Access | None = None,
        topic: str | None = None,
    ) -> bool | None:
        params = {name: _fill(value, client, access, topic) for name, value in request.params.items()}
        headers = dict(request.headers)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        try:
            http = await self._http(settings)
            method = request.method.upper()
            if request.method == "get":
                response = await http.request(method, request.url, headers=headers, params=params)
            elif "json" in content_type.lower():
                response = await http.request(method, request.url, headers=headers, json=params)
            else:
                response = await http.request(method, request.url, headers=headers, data=params)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            log.warning("http_auth: %s for %s failed (%s): refused", request.url, client.client_id, reason)
            return False
        if response.is_success:
            return None if response.text.strip().lower() == "ignore" else True
        log.info("http_auth: %s answered %d for %s: refused", request.url, response.status_code, client.client_id)
        return False
