"""Typed, immutable broker settings in the shape of NanoMQ's ``nanomq.conf`` (spec section 5).

Models reject unknown keys and wrong types (strict mode); sizes accept ``1MB`` / ``512KB`` /
bytes, durations ``10s`` / ``5m`` / seconds, as NanoMQ writes them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

__all__ = [
    "DEFAULT_ADMIN_PASSWORD",
    "DEFAULT_ADMIN_USERNAME",
    "Acl",
    "AclRule",
    "Auth",
    "Bridge",
    "BrokerSettings",
    "HttpServer",
    "Listeners",
    "LiveSettings",
    "Log",
    "Mqtt",
    "SslListener",
    "TcpListener",
    "WsListener",
    "split_bind",
]

DEFAULT_ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "public"  # noqa: S105 - NanoMQ's documented default, warned about on public binds

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"not a size: {value!r} (use bytes or a number with KB, MB or GB)")
        return int(match[1]) * _SIZE_UNITS[(match[2] or "").upper()]
    return value


def _parse_duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use seconds or a number with ms, s, m, h or d)")
        return float(match[1]) * _DURATION_UNITS[match[2] or ""]
    return value


Size = Annotated[int, BeforeValidator(_parse_size), Field(ge=0)]
"""Bytes; written as an integer."""
Duration = Annotated[float, BeforeValidator(_parse_duration), Field(ge=0), PlainSerializer(lambda v: v)]
"""Seconds; written as a number."""
PositiveDuration = Annotated[Duration, Field(gt=0)]
"""Seconds, more than zero."""
Port = Annotated[int, Field(ge=0, le=65535)]
Qos = Annotated[int, Field(ge=0, le=2)]


def split_bind(bind: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:1883``) into (host, port); a path after the port is ignored."""
    address = bind.split("/", 1)[0]
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, colon, port = address.rpartition(":")
        if not colon:
            raise ValueError(f"not host:port: {bind!r}")
    return host or "0.0.0.0", int(port) if port else default_port  # noqa: S104 - NanoMQ's meaning of ":1883"


def _check_bind(bind: str) -> str:
    try:
        _, port = split_bind(bind, 0)
    except ValueError:
        raise ValueError(f"not host:port: {bind!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {bind!r}")
    return bind


Bind = Annotated[str, BeforeValidator(lambda v: _check_bind(v) if isinstance(v, str) else v)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Backlog = Annotated[int, Field(ge=1, le=65535)]
"""Connections the kernel completes and holds until the broker accepts them (listen(2); Linux
caps it at net.core.somaxconn). asyncio's own default of 100 is too small for a fleet of
devices reconnecting at once."""


class TcpListener(_Section):
    """Plain MQTT over TCP; port 0 picks a free port."""

    bind: Bind = "127.0.0.1:1883"
    backlog: Backlog = 1024

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return split_bind(self.bind, 1883)


class SslListener(_Section):
    """MQTT over TLS."""

    bind: Bind = "127.0.0.1:8883"
    backlog: Backlog = 1024
    keyfile: str
    certfile: str
    cacertfile: str | None = None
    keypass: str | None = None
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return split_bind(self.bind, 8883)


class WsListener(_Section):
    """MQTT over WebSocket; the path after the port is the only path served."""

    bind: Bind = "127.0.0.1:8083/mqtt"
    backlog: Backlog = 1024

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return split_bind(self.bind, 8083)

    @property
    def path(self) -> str:
        """The URL path clients connect to."""
        _, slash, path = self.bind.partition("/")
        return "/" + path if slash else "/mqtt"


class Listeners(_Section):
    """MQTT listeners; tcp is on unless set to null, ws and ssl are off unless configured."""

    tcp: TcpListener | None = TcpListener()
    ws: WsListener | None = None
    ssl: SslListener | None = None

    def configured(self) -> list[tuple[str, TcpListener | SslListener | WsListener]]:
        """(name, listener) of every listener that is on."""
        candidates: list[tuple[str, TcpListener | SslListener | WsListener | None]] = [
            ("tcp", self.tcp),
            ("ssl", self.ssl),
            ("ws", self.ws),
        ]
        return [(name, listener) for name, listener in candidates if listener is not None]


class Mqtt(_Section):
    """MQTT protocol limits."""

    max_packet_size: Size = 1024 * 1024
    max_mqueue_len: Annotated[int, Field(ge=1)] = 2048
    """Messages waiting for one client, connected (unfinished deliveries) or offline (queued)."""
    max_mqueue_bytes: Size = 16 * 1024 * 1024
    """edgemq: payload bytes waiting for one client, the same copies as ``max_mqueue_len``; a
    client that does not read cannot pin more memory than this (its first copy always fits)."""
    retry_interval: Duration = 10.0
    """Accepted for NanoMQ files; MQTT 3.1.1 resends unacknowledged messages on reconnect only."""
    keepalive_multiplier: Annotated[float, Field(ge=1.0)] = 1.5
    """A client silent for keepalive x this is disconnected (MQTT 3.1.1 says 1.5)."""
    max_connections: Annotated[int, Field(ge=0)] = 0
    """edgemq: connections accepted at once (0 = no limit); more get CONNACK 3."""
    connect_timeout: Duration = 10.0
    """edgemq: seconds a new connection has to send its CONNECT."""


class JwtPublicKey(_Section):
    """Where the RS256 public key is."""

    keyfile: str


class Jwt(_Section):
    """JWT verification of admin API requests."""

    public: JwtPublicKey


class HttpServer(_Section):
    """The admin API server."""

    ip_addr: str = "127.0.0.1"
    port: Port = 8081
    username: str = DEFAULT_ADMIN_USERNAME
    password: str = Field(default=DEFAULT_ADMIN_PASSWORD, repr=False)
    max_body: Size = 1024 * 1024
    auth_type: Literal["basic", "no_auth"] = "basic"
    prometheus_auth: bool = True
    jwt: Jwt | None = None
    request_timeout: PositiveDuration = 10.0
    """edgemq: seconds a client has to send a whole request, headers and body, from its first
    byte (a new connection: from its start); an unfinished request then gets 408 and is closed."""
    keepalive_timeout: PositiveDuration = 5.0
    """edgemq: seconds an idle keep-alive connection stays open between requests."""
    max_connections: Annotated[int, Field(ge=1)] = 256
    """edgemq: admin connections open at once; more are answered 503 and closed at once."""

    @property
    def uses_default_password(self) -> bool:
        """Whether the admin API still accepts the well-known default credentials."""
        return (
            self.auth_type == "basic"
            and self.username == DEFAULT_ADMIN_USERNAME
            and self.password == DEFAULT_ADMIN_PASSWORD
        )


class Auth(_Section):
    """MQTT client authentication."""

    allow_anonymous: bool = True
    password: dict[str, str] = Field(default_factory=dict, repr=False)
    """username -> password (plain or an argon2 hash), e.g. ``{ include "passwd.conf" }``."""
    password_file: str | None = None
    """edgemq: a file of ``username:password`` lines (plain or argon2 hashes)."""


class AclRule(_Section):
    """One ACL rule, as in NanoMQ's acl file: the first rule that matches decides."""

    permit: Literal["allow", "deny"]
    action: Literal["publish", "subscribe", "pubsub"] = "pubsub"
    topics: list[str]
    username: str | None = None
    """None or ``"#"``: any user."""
    clientid: str | None = None
    """None or ``"#"``: any client."""


class Acl(_Section):
    """Topic access control (restart to change)."""

    no_match: Literal["allow", "deny"] = "allow"
    rules: list[AclRule] = Field(default_factory=list)


class Log(_Section):
    """Logging."""

    to: list[Literal["console", "file"]] = ["console"]
    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal"] = "info"
    dir: str = "."
    file: str = "edgemq.log"


class BridgeTopic(_Section):
    """One forwarded or subscribed topic of a bridge."""

    remote_topic: str
    local_topic: str
    qos: Qos = 0


class Bridge(_Section):
    """An MQTT bridge (parsed and validated; the bridge itself is not implemented yet)."""

    server: Annotated[str, Field(pattern=r"^mqtt-(tcp|quic)://")]
    clientid: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    keepalive: Duration = 60.0
    clean_start: bool = False
    proto_ver: Annotated[int, Field(ge=3, le=5)] = 4
    forwards: list[BridgeTopic] = Field(default_factory=list)
    subscription: list[BridgeTopic] = Field(default_factory=list)


class Bridges(_Section):
    """Bridges by kind."""

    mqtt: dict[str, Bridge] = Field(default_factory=dict)


class BrokerSettings(_Section):
    """Everything needed to start one edgemq broker."""

    listeners: Listeners = Listeners()
    mqtt: Mqtt = Mqtt()
    http_server: HttpServer = HttpServer()
    auth: Auth = Auth()
    acl: Acl = Acl()
    log: Log = Log()
    bridges: Bridges = Bridges()
    shutdown_timeout: Duration = 10.0
    """edgemq: seconds the whole shutdown may take before remaining work is cancelled."""

    @classmethod
    def ephemeral(cls) -> BrokerSettings:
        """The defaults with MQTT and the admin API on free loopback ports (tests, embedding)."""
        return cls(listeners=Listeners(tcp=TcpListener(bind="127.0.0.1:0")), http_server=HttpServer(port=0))


class LiveSettings:
    """The running settings, shared by both sides; live-applicable changes replace ``current``."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.current = settings
