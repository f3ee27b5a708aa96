"""Settings of MQTT bridges: NanoMQ's ``bridges.mqtt.<name>`` sections and ``bridges.mqtt.cache``.

A NanoMQ bridge section loads unchanged, apart from what edgemq does not build and refuses by
name: QUIC (``mqtt-quic://``), MQTT 3.1 bridges, and NanoMQ's MQTT 5 property blocks
(``conn_properties``, ``sub_properties``, ``will``) or QUIC keys (unknown keys are errors). An
MQTT 5 bridge (``proto_ver = 5``) carries messages' properties both ways and honours the upstream's
limits (broker/bridges/link_v5.py). Keys NanoMQ needs for its own design (``resend_interval``, ``resend_wait``,
``max_parallel_processes``, ``max_recv_queue_len``, ``cancel_timeout``, the cache block's
``mounted_file_path``, ``flush_mem_threshold``, ``resend_interval``) are accepted and unused:
edgemq resends what is unacknowledged at once on every reconnect, in order, within a window of
``max_inflight`` publishes.

The queue of messages to forward is kept in the persistence store when persistence is on (it
survives a restart or kill -9), in memory otherwise; ``max_send_queue_len`` caps it per bridge,
and with persistence on ``bridges.mqtt.cache.disk_cache_size`` too. What overflows is dropped
and counted. ``cache`` is NanoMQ's cache block beside the named bridges: no bridge can be
named ``cache``. Topic mapping (``remote_topic``, ``local_topic``, ``prefix``, ``suffix``) is
described in ``broker.bridges.topics``. Changing any ``bridges`` key needs a restart.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from broker.bridges.topics import is_valid_topic_filter, map_topic, plus_levels_fit
from broker.config.values import Duration, Qos, Section

__all__ = ["Bridge", "BridgeCache", "BridgeSsl", "Bridges", "Forward", "Subscription"]

_SERVER = re.compile(r"^(?P<scheme>[a-z+-]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\[\]@\s]+)(?::(?P<port>\d{1,5}))?/?$")
_SCHEMES = {"mqtt-tcp": False, "tls+mqtt-tcp": True}
_DEFAULT_PORTS = {False: 1883, True: 8883}


def _check_server(value: str) -> str:
    match = _SERVER.match(value)
    if match is None:
        raise ValueError(f"not a server address: {value!r} (write mqtt-tcp://host:port or tls+mqtt-tcp://host:port)")
    scheme = match["scheme"]
    if scheme == "mqtt-quic":
        raise ValueError("QUIC is not supported: use mqtt-tcp://host:port or tls+mqtt-tcp://host:port")
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: use mqtt-tcp://host:port or tls+mqtt-tcp://host:port")
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    return value


def _check_proto_ver(value: int) -> int:
    if value not in (4, 5):
        raise ValueError(
            f"MQTT protocol version {value} is not supported: use proto_ver = 4 (MQTT 3.1.1) or 5 (MQTT 5)"
        )
    return value


def _check_filter(value: str) -> str:
    if not is_valid_topic_filter(value):
        raise ValueError(f"not a valid topic filter: {value!r}")
    return value


def _check_target(value: str) -> str:
    if value and not is_valid_topic_filter(value):
        raise ValueError(f"not a valid topic (or topic with wildcards to fill in): {value!r}")
    return value


def _check_affix(value: str) -> str:
    if "+" in value or "#" in value or "\x00" in value:
        raise ValueError(f"must not contain '+', '#' or NUL: {value!r}")
    return value


def _nanomq_retain(value: Any) -> Any:
    """NanoMQ writes retain as 0 (clear), 1 (set) or 2 (keep the message's flag)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return None if value == 2 else bool(value)
    return value


Filter = Annotated[str, AfterValidator(_check_filter)]
Target = Annotated[str, AfterValidator(_check_target)]
Affix = Annotated[str, AfterValidator(_check_affix)]
Retain = Annotated[bool | None, BeforeValidator(_nanomq_retain)]
Milliseconds = Annotated[int, Field(ge=0, le=86_400_000)]


class _Rule(Section):
    """What forwards and subscriptions share: a filter on one side, a topic made on the other."""

    retain: Retain = None
    """The retain flag on the other side: true, false, or None (NanoMQ's 2) to keep the message's."""
    prefix: Affix = ""
    """Put before the mapped topic as written (write the slash: ``"site1/"``)."""
    suffix: Affix = ""
    """Put after the mapped topic as written (write the slash: ``"/raw"``)."""
    qos: int  # each kind has its own default
    sides: ClassVar[tuple[str, str]]
    """The filter's field and the target's field."""

    @property
    def source(self) -> str:
        """The filter messages must match."""
        return str(getattr(self, self.sides[0]))

    @property
    def target(self) -> str:
        """The topic (with wildcards to fill in) they get on the other side."""
        return str(getattr(self, self.sides[1]))

    def carry(self, topic: str, qos: int, retain: bool) -> tuple[str, int, bool]:
        """(topic, QoS, retain) a message matching ``source`` gets on the other side: the topic
        mapped (ValueError if that makes no valid topic), QoS never above the message's."""
        mapped = map_topic(topic, self.source, self.target, self.prefix, self.suffix)
        return mapped, min(self.qos, qos), retain if self.retain is None else self.retain

    @model_validator(mode="after")
    def _plus_levels(self) -> Self:
        source, target = self.sides
        if not plus_levels_fit(self.source, self.target):
            raise ValueError(
                f"{target} has more '+' levels than {source}: each takes a level a '+' of {source} matched"
            )
        return self


class Forward(_Rule):
    """A local -> remote rule: local messages matching ``local_topic`` are sent upstream."""

    local_topic: Filter
    """The local topic filter whose messages are forwarded."""
    remote_topic: Target = ""
    """The upstream topic: empty keeps the local topic; wildcards take the levels the filter matched."""
    qos: Qos = 2
    """The upstream QoS, never above the message's own (2, the default, keeps the message's)."""
    sides: ClassVar[tuple[str, str]] = ("local_topic", "remote_topic")


class Subscription(_Rule):
    """A remote -> local rule: the bridge subscribes upstream to ``remote_topic``."""

    remote_topic: Filter
    """The upstream topic filter the bridge subscribes to."""
    local_topic: Target = ""
    """The local topic: empty keeps the remote topic; wildcards take the levels the filter matched."""
    qos: Qos = 1
    """The QoS of the upstream subscription."""
    sides: ClassVar[tuple[str, str]] = ("remote_topic", "local_topic")


class BridgeSsl(Section):
    """TLS to the upstream (used with a ``tls+mqtt-tcp://`` server)."""

    keyfile: str | None = None
    """The bridge's client key (PEM), with ``certfile``, for servers that want a client certificate."""
    certfile: str | None = None
    """The bridge's client certificate (PEM), with ``keyfile``."""
    cacertfile: str | None = None
    """The CA certificates (PEM) the server's certificate must chain to; None: the system's."""
    keypass: str | None = Field(default=None, repr=False, validation_alias=AliasChoices("keypass", "key_password"))
    """The password of ``keyfile`` (NanoMQ writes ``key_password``)."""
    verify_peer: bool = True
    """edgemq: on by default (NanoMQ's is off): the server's certificate and host name are checked."""
    server_name_indication: str | None = None
    """The host name sent in SNI and checked against the certificate; None: the server's host."""

    @model_validator(mode="after")
    def _key_and_certificate(self) -> BridgeSsl:
        if (self.keyfile is None) != (self.certfile is None):
            raise ValueError("keyfile and certfile go together: set both or neither")
        return self


class Bridge(Section):
    """One MQTT bridge to an upstream broker (``bridges.mqtt.<name>``)."""

    enable: bool = True
    """Off: the bridge is configured but never connects."""
    server: Annotated[str, AfterValidator(_check_server)]
    """``mqtt-tcp://host:port`` or ``tls+mqtt-tcp://host:port`` (port default 1883 / 8883)."""
    proto_ver: Annotated[int, AfterValidator(_check_proto_ver)] = 4
    """MQTT version: 4 (MQTT 3.1.1) or 5 (MQTT 5: properties forwarded, the upstream's limits honoured)."""
    clientid: str = ""
    """The bridge's client id upstream; empty: ``edgemq-bridge-<name>``."""
    username: str | None = None
    """The user name sent upstream, if any."""
    password: str | None = Field(default=None, repr=False)
    """The password sent upstream, if any (masked in every configuration read)."""
    keepalive: Annotated[Duration, Field(le=65535)] = 60.0
    """Seconds between pings; a silent link is dropped after 1.5x this (0: no keep-alive)."""
    clean_start: bool = False
    """False: the upstream keeps the bridge's session and subscriptions across reconnects."""
    forwards: list[Forward] = Field(default_factory=list)
    """Local -> remote rules; every matching rule forwards its own copy."""
    subscription: list[Subscription] = Field(default_factory=list)
    """Remote -> local rules, subscribed upstream on every connect."""
    max_send_queue_len: Annotated[int, Field(ge=1)] = 32768
    """Messages queued for upstream per bridge; overflow is dropped and counted."""
    max_inflight: Annotated[int, Field(ge=1, le=65535)] = 256
    """edgemq: QoS 1/2 publishes sent upstream and not yet acknowledged, at most."""
    resend_interval: Milliseconds = 5000
    """Accepted for NanoMQ files; edgemq resends unacknowledged messages at once on reconnect."""
    resend_wait: Milliseconds = 3000
    """Accepted for NanoMQ files; unused (nothing waits before a resend)."""
    cancel_timeout: Milliseconds = 10000
    """Accepted for NanoMQ files; unused."""
    max_parallel_processes: Annotated[int, Field(ge=1)] = 2
    """Accepted for NanoMQ files; unused (one asyncio task per bridge)."""
    max_recv_queue_len: Annotated[int, Field(ge=1)] = 128
    """Accepted for NanoMQ files; unused (received messages are routed at once)."""
    ssl: BridgeSsl | None = None
    """TLS settings; only with a ``tls+mqtt-tcp://`` server (None: the defaults, if TLS)."""

    @model_validator(mode="after")
    def _ssl_needs_tls(self) -> Bridge:
        if self.ssl is not None and not self.tls:
            raise ValueError("ssl is set but the server is mqtt-tcp://: write tls+mqtt-tcp:// to connect with TLS")
        return self

    @property
    def tls(self) -> bool:
        """Whether the bridge connects with TLS (a ``tls+mqtt-tcp://`` server)."""
        return self.server.startswith("tls+")

    @property
    def address(self) -> tuple[str, int]:
        """The upstream's (host, port); an IPv6 host without its brackets."""
        match = _SERVER.match(self.server)
        assert match is not None  # checked when validated
        port = match["port"]
        return match["host"].strip("[]"), int(port) if port else _DEFAULT_PORTS[self.tls]


class BridgeCache(Section):
    """NanoMQ's ``bridges.mqtt.cache`` block: limits of the stored queue of every bridge."""

    disk_cache_size: Annotated[int, Field(ge=1)] = 102400
    """Messages kept in the persistence store per bridge (with persistence on); overflow is dropped and counted."""
    mounted_file_path: str = "/tmp/"  # noqa: S108 - NanoMQ's default, unused
    """Accepted for NanoMQ files; the queue is in the persistence store (``persistence.path``)."""
    flush_mem_threshold: Annotated[int, Field(ge=1)] = 100
    """Accepted for NanoMQ files; unused (every queued message is committed before it is acknowledged)."""
    resend_interval: Milliseconds = 5000
    """Accepted for NanoMQ files; edgemq resends the queue at once on reconnect."""

    @model_validator(mode="before")
    @classmethod
    def _not_a_bridge(cls, data: Any) -> Any:
        if isinstance(data, dict) and "server" in data:
            raise ValueError("'cache' is NanoMQ's cache block, not a bridge: give the bridge another name")
        return data


def _check_name(name: str) -> None:
    if not name or "/" in name or any(ord(ch) < 32 for ch in name):
        raise ValueError(
            f"bridge name {name!r}: must be non-empty, without '/' or control characters (it is a URL path segment)"
        )


class Bridges(Section):
    """Bridges by kind: ``bridges.mqtt.<name>`` and NanoMQ's ``bridges.mqtt.cache`` beside them."""

    mqtt: dict[str, Bridge] = Field(default_factory=dict)
    """Name -> bridge, in file order (the ``cache`` block is not among them)."""
    cache: BridgeCache = Field(default_factory=BridgeCache, validation_alias=AliasPath("mqtt", "cache"))
    """``bridges.mqtt.cache``, read and written at that key."""

    @field_validator("mqtt", mode="before")
    @classmethod
    def _without_cache(cls, value: Any) -> Any:
        if isinstance(value, dict) and "cache" in value:
            return {name: bridge for name, bridge in value.items() if name != "cache"}
        return value

    @field_validator("mqtt", mode="after")
    @classmethod
    def _named(cls, value: dict[str, Bridge]) -> dict[str, Bridge]:
        for name in value:
            _check_name(name)
        return {
            name: bridge if bridge.clientid else bridge.model_copy(update={"clientid": f"edgemq-bridge-{name}"})
            for name, bridge in value.items()
        }

    @model_serializer(mode="wrap")
    def _cache_beside_bridges(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "cache" in data:
            data["mqtt"] = {"cache": data.pop("cache"), **data.get("mqtt", {})}
        return data
