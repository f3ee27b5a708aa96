"""Typed, immutable broker settings with the defaults of the admin API contract."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "public"  # noqa: S105 - NanoMQ's documented default, warned about on public binds


@dataclass(frozen=True, slots=True)
class MqttListener:
    """The plain TCP MQTT listener (port 0 picks a free port)."""

    host: str = "127.0.0.1"
    port: int = 1883
    connect_timeout: float = 10.0
    """Seconds a new connection has to send its CONNECT before it is closed."""


@dataclass(frozen=True, slots=True)
class HttpServer:
    """The admin API server (NanoMQ's ``http_server`` section)."""

    ip_addr: str = "127.0.0.1"
    port: int = 8081
    username: str = DEFAULT_ADMIN_USERNAME
    password: str = field(default=DEFAULT_ADMIN_PASSWORD, repr=False)
    max_body: int = 1024 * 1024

    @property
    def uses_default_password(self) -> bool:
        """Whether the admin API still accepts the well-known default credentials."""
        return self.username == DEFAULT_ADMIN_USERNAME and self.password == DEFAULT_ADMIN_PASSWORD


@dataclass(frozen=True, slots=True)
class Auth:
    """MQTT client authentication."""

    allow_anonymous: bool = True


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything needed to start one edgemq broker."""

    mqtt: MqttListener = field(default_factory=MqttListener)
    http_server: HttpServer = field(default_factory=HttpServer)
    auth: Auth = field(default_factory=Auth)
    shutdown_timeout: float = 10.0
    """Seconds the whole shutdown may take before remaining work is cancelled."""
