"""Typed, immutable broker settings in the shape of NanoMQ's ``nanomq.conf`` (spec section 5).

Models reject unknown keys and wrong types (strict mode); the value types they use (sizes,
durations, binds, addresses) are in ``broker.config.values``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from broker.config.bridge_settings import Bridge, BridgeCache, Bridges, BridgeSsl, Forward, Subscription
from broker.config.plugin_settings import HttpAuth, HttpAuthSsl, HttpRequest, PluginOptions
from broker.config.store_settings import Persistence, Sqlite, sqlite_rules
from broker.config.values import (
    MQTT_MAX_PACKET,
    Backlog,
    Bind,
    Duration,
    IpAddress,
    IpNetwork,
    Port,
    PositiveDuration,
    Section,
    Size,
    split_bind,
)

__all__ = [
    "DEFAULT_ADMIN_PASSWORD",
    "DEFAULT_ADMIN_USERNAME",
    "Acl",
    "AclCache",
    "AclCondition",
    "AclFile",
    "AclRule",
    "Auth",
    "Bridge",
    "BridgeCache",
    "BridgeSsl",
    "Bridges",
    "BrokerSettings",
    "Forward",
    "HttpAuth",
    "HttpAuthSsl",
    "HttpRequest",
    "HttpServer",
    "Listeners",
    "LiveSettings",
    "Log",
    "Mqtt",
    "Persistence",
    "Sqlite",
    "SslListener",
    "Subscription",
    "TcpListener",
    "WsListener",
    "split_bind",
]

DEFAULT_ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "public"  # noqa: S105 - NanoMQ's documented default, warned about on public binds


def _check_admin_username(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (the admin API would refuse every request)")
    if ":" in value:
        raise ValueError("must not contain ':' (HTTP Basic auth cannot carry it)")
    return value


def _check_admin_password(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (the admin API would refuse every request)")
    return value


class TcpListener(Section):
    """Plain MQTT over TCP; port 0 picks a free port."""

    bind: Bind = "127.0.0.1:1883"
    backlog: Backlog = 1024

    @property
    def address(self) -> tuple[str, int]:
        """(host, port)."""
        return split_bind(self.bind, 1883)


class SslListener(Section):
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


class WsListener(Section):
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


class Listeners(Section):
    """MQTT listeners; tcp is on unless set to null, ws and ssl are off unless configured; at
    least one is on."""

    tcp: TcpListener | None = TcpListener()
    ws: WsListener | None = None
    ssl: SslListener | None = None

    @model_validator(mode="after")
    def _one_is_on(self) -> Listeners:
        if not self.configured():
            raise ValueError("no MQTT listener is on (set listeners.tcp, listeners.ssl or listeners.ws)")
        return self

    def configured(self) -> list[tuple[str, TcpListener | SslListener | WsListener]]:
        """(name, listener) of every listener that is on."""
        candidates: list[tuple[str, TcpListener | SslListener | WsListener | None]] = [
            ("tcp", self.tcp),
            ("ssl", self.ssl),
            ("ws", self.ws),
        ]
        return [(name, listener) for name, listener in candidates if listener is not None]


class Mqtt(Section):
    """MQTT protocol limits."""

    max_packet_size: Annotated[Size, Field(ge=1024, le=MQTT_MAX_PACKET)] = 1024 * 1024
    """From 1KB (smaller would refuse ordinary CONNECTs) to MQTT's limit."""
    shared_subscriptions: bool = True
    """edgemq: ``$share/<name>/<filter>`` subscriptions (one member of a group gets each message);
    false refuses them (SUBACK 0x80)."""
    max_mqueue_len: Annotated[int, Field(ge=1)] = 2048
    """Messages waiting for one client, connected (unfinished deliveries) or offline (queued)."""
    max_mqueue_bytes: Size = 16 * 1024 * 1024
    """edgemq: payload bytes waiting for one client, the same copies as ``max_mqueue_len``; a
    client that does not read cannot pin more memory than this (its first copy always fits)."""
    retry_interval: Duration = 10.0
    """Accepted for NanoMQ files; MQTT 3.1.1 resends unacknowledged messages on reconnect only."""
    keepalive_multiplier: Annotated[float, Field(ge=1.0, le=10.0, allow_inf_nan=False)] = 1.5
    """A client silent for keepalive x this is disconnected (MQTT 3.1.1 says 1.5)."""
    max_connections: Annotated[int, Field(ge=0)] = 0
    """edgemq: connections accepted at once (0 = no limit); more get CONNACK 3."""
    connect_timeout: PositiveDuration = 10.0
    """edgemq: seconds a new connection has to send its CONNECT."""
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 65535
    """MQTT 5: QoS 2 PUBLISHes a client may have unreleased at once (told in CONNACK); one more
    ends its connection (DISCONNECT 0x93)."""
    topic_alias_maximum: Annotated[int, Field(ge=0, le=65535)] = 10
    """MQTT 5: topic aliases a client may set on one connection (0: none)."""
    max_keepalive: Annotated[int, Field(ge=0, le=65535)] = 0
    """MQTT 5: the longest keep alive a client may ask for, seconds; a longer one (or none) is
    lowered to this in CONNACK's Server Keep Alive. 0: whatever the client asks."""


class JwtPublicKey(Section):
    """Where the RS256 public key is."""

    keyfile: str


class Jwt(Section):
    """JWT verification of admin API requests."""

    public: JwtPublicKey


class HttpServer(Section):
    """The admin API server."""

    ip_addr: IpAddress = "127.0.0.1"
    port: Port = 8081
    username: Annotated[str, AfterValidator(_check_admin_username)] = DEFAULT_ADMIN_USERNAME
    password: Annotated[str, AfterValidator(_check_admin_password)] = Field(default=DEFAULT_ADMIN_PASSWORD, repr=False)
    max_body: Annotated[Size, Field(ge=1024)] = 1024 * 1024
    """At least 1KB: a smaller limit would refuse the requests that change it back."""
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


class AclCondition(Section):
    """Who a rule (or one of its ``and``/``or`` terms) is about; every field given must match."""

    username: str | None = None
    """None or ``"#"``: any user."""
    clientid: str | None = None
    """None or ``"#"``: any client."""
    ipaddr: IpNetwork | None = None
    """The client's address: one address or a network (``192.168.1.0/24``)."""


class AclRule(AclCondition):
    """One ACL rule, as in NanoMQ's acl file: the first rule that matches decides."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, serialize_by_alias=True)

    permit: Literal["allow", "deny"]
    action: Literal["publish", "subscribe", "pubsub"] = "pubsub"
    topics: list[str] | None = None
    """Topic filters; None: every topic. ``${clientid}`` and ``${username}`` stand for the client's."""
    all_of: list[AclCondition] = Field(default_factory=list, alias="and")
    any_of: list[AclCondition] = Field(default_factory=list, alias="or")


class AclFile(Section):
    """``auth.acl``: NanoMQ's acl file (``acl = { include "nanomq_acl.conf" }``)."""

    rules: list[AclRule] = Field(default_factory=list)


class AclCache(Section):
    """NanoMQ's ACL cache: how long (and how many per client) ``http_auth.acl_req`` answers are
    kept; edgemq checks its own rules every time."""

    max_size: Annotated[int, Field(ge=1)] = 32
    ttl: Duration = 60.0


class Acl(Section):
    """The topic ACL in effect: the rules and what decides when none matches."""

    no_match: Literal["allow", "deny"] = "allow"
    rules: list[AclRule] = Field(default_factory=list)


class Auth(Section):
    """MQTT client authentication and topic authorisation, in NanoMQ's layout."""

    allow_anonymous: bool = True
    no_match: Literal["allow", "deny"] = "allow"
    """What the ACL decides when no rule matches."""
    deny_action: Literal["ignore", "disconnect"] = "ignore"
    """What a refused PUBLISH or SUBSCRIBE does: dropped (SUBACK 0x80), or the client disconnected."""
    cache: AclCache = AclCache()
    password: dict[str, str] = Field(default_factory=dict, repr=False)
    """username -> password (plain or an argon2 hash), e.g. ``{ include "passwd.conf" }``."""
    password_file: str | None = None
    """edgemq: a file of ``username:password`` lines (plain or argon2 hashes)."""
    acl: AclFile = AclFile()
    http_auth: HttpAuth | None = None
    """NanoMQ's HTTP authentication and ACL (``broker.config.plugin_settings``)."""
    plugin_mode: Literal["restrict", "decide"] = "restrict"
    """edgemq: how ``http_auth`` and auth/topic plugins combine with the password list and ACL:
    ``restrict``: every check that answers must allow (edgemq's always answers, first);
    ``decide``: they answer first, edgemq's own checks only when all of them abstain."""
    plugin_timeout: PositiveDuration = 5.0
    """edgemq: seconds an auth or topic plugin may take to answer; then its answer is a refusal."""


def _acl_moved(value: Any) -> None:
    raise ValueError(
        "the ACL moved into auth, as in NanoMQ: write auth.no_match and auth.acl = { rules = [...] }"
        ' (or auth.acl = { include "acl.conf" })'
    )


class Log(Section):
    """Logging."""

    to: list[Literal["console", "file"]] = ["console"]  # noqa: RUF012 - a pydantic field: copied per instance
    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal"] = "info"
    dir: str = "."
    file: str = "edgemq.log"


class BrokerSettings(Section):
    """Everything needed to start one edgemq broker."""

    listeners: Listeners = Listeners()
    mqtt: Mqtt = Mqtt()
    http_server: HttpServer = HttpServer()
    auth: Auth = Auth()
    log: Log = Log()
    bridges: Bridges = Bridges()
    """MQTT bridges to upstream brokers (``broker.config.bridge_settings``); changes need a restart."""
    persistence: Persistence = Persistence()
    """edgemq: the embedded store (off unless configured); ``persistence.store_path`` is its file."""
    sqlite: Sqlite = Sqlite()
    """NanoMQ's section, folded into ``persistence`` when the settings are validated."""
    plugins: PluginOptions = Field(default_factory=dict)
    """edgemq: amqtt broker plugins to load (class path or registered name -> options); they
    apply when edgemq starts (``broker.config.plugin_settings``)."""
    shutdown_timeout: Duration = 10.0
    """edgemq: seconds the whole shutdown may take before remaining work is cancelled."""
    former_acl: Annotated[None, BeforeValidator(_acl_moved)] = Field(default=None, alias="acl", exclude=True)
    """The top-level ``acl`` section of earlier edgemq versions: refused with where it went."""

    @model_validator(mode="after")
    def _fold_sqlite(self) -> BrokerSettings:
        """NanoMQ's ``sqlite`` keys fill the ``persistence`` keys no layer set, so the rest of
        edgemq reads ``persistence`` only."""
        persistence = sqlite_rules(self.persistence, self.sqlite)
        if persistence is not self.persistence:
            object.__setattr__(self, "persistence", persistence)  # the model is frozen once validated
        return self

    @cached_property
    def acl(self) -> Acl:
        """The topic ACL in effect (``auth.no_match`` and ``auth.acl.rules``)."""
        return Acl.model_construct(no_match=self.auth.no_match, rules=self.auth.acl.rules)

    @classmethod
    def ephemeral(cls) -> BrokerSettings:
        """The defaults with MQTT and the admin API on free loopback ports (tests, embedding)."""
        return cls(listeners=Listeners(tcp=TcpListener(bind="127.0.0.1:0")), http_server=HttpServer(port=0))


class LiveSettings:
    """The running settings, shared by both sides; live-applicable changes replace ``current``."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.current = settings
