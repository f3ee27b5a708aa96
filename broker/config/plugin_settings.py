"""Settings for what decides beside edgemq's own checks: NanoMQ's ``auth.http_auth`` and amqtt
broker plugins (``plugins``, loaded by ``broker.amqtt_adapter.plugin_loading``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

from broker.config.values import PositiveDuration, Section

__all__ = ["HttpAuth", "HttpAuthSsl", "HttpRequest", "PluginOptions"]


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: expected an http:// or https:// URL with a host")
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class HttpRequest(Section):
    """One request of ``auth.http_auth`` (NanoMQ's keys): where it goes and what it carries.

    ``params`` values may hold placeholders: ``%u`` user name, ``%c`` client id, ``%P`` password,
    ``%a`` client address, ``%p`` client port, ``%r`` protocol (``mqtt``), ``%A`` access (1
    subscribe, 2 publish), ``%t`` topic, ``%m`` mount point (empty), ``%C``/``%d`` TLS client
    certificate common name / subject (empty: edgemq does not ask for client certificates).
    """

    url: Annotated[str, AfterValidator(_check_url)]
    method: Annotated[Literal["post", "get", "put"], BeforeValidator(_lower)] = "post"
    headers: dict[str, str] = Field(default_factory=dict)
    """``content-type`` picks the body: ``application/json`` or (default) a form; GET sends a query."""
    params: dict[str, str] = Field(default_factory=dict)


class HttpAuthSsl(Section):
    """TLS towards the auth server (``https://`` URLs)."""

    enable: bool = False
    cacertfile: str | None = None
    """CA bundle that verifies the server (default: the system's)."""
    certfile: str | None = None
    keyfile: str | None = None
    verify_peer: bool = True


class HttpAuth(Section):
    """NanoMQ's ``auth.http_auth``: an HTTP server decides CONNECTs (``auth_req``), names
    superusers (``super_req``: no ``acl_req`` for them) and PUBLISH/SUBSCRIBE (``acl_req``).

    A 2xx answer allows, a 2xx answer whose body is ``ignore`` leaves the decision to the others,
    anything else (4xx, 5xx, no answer within ``timeout``, no connection) refuses.
    """

    enable: bool = True
    auth_req: HttpRequest | None = None
    super_req: HttpRequest | None = None
    acl_req: HttpRequest | None = None
    timeout: PositiveDuration = 5.0
    connect_timeout: PositiveDuration = 5.0
    pool_size: Annotated[int, Field(ge=1)] = 32
    ssl: HttpAuthSsl = HttpAuthSsl()


PluginOptions = dict[str, dict[str, Any]]
"""``plugins``: amqtt broker plugin (dotted class path, or the name amqtt registers it under)
-> its options, as in amqtt's own ``plugins:`` configuration."""
