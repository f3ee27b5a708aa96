"""Value types of the settings: sizes, durations, ports, ``host:port`` binds and IP addresses.

Sizes accept ``1MB`` / ``512KB`` / bytes, durations ``10s`` / ``5m`` / seconds, as NanoMQ writes them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

__all__ = [
    "MAX_DURATION",
    "MQTT_MAX_PACKET",
    "Backlog",
    "Bind",
    "Duration",
    "IpAddress",
    "IpNetwork",
    "Port",
    "PositiveDuration",
    "Qos",
    "Section",
    "Size",
    "split_bind",
]

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


MAX_DURATION = 86400.0
"""The longest duration any setting takes (a day); more is a typo, not a timeout."""
MQTT_MAX_PACKET = 268_435_455
"""The largest packet MQTT 3.1.1's remaining length can describe (2.2.3)."""

Size = Annotated[int, BeforeValidator(_parse_size), Field(ge=0)]
"""Bytes; written as an integer."""
Duration = Annotated[
    float,
    BeforeValidator(_parse_duration),
    Field(ge=0, le=MAX_DURATION, allow_inf_nan=False),
    PlainSerializer(lambda v: v),
]
"""Seconds, at most a day; written as a number."""
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


def _check_ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None
    return value


def _check_ip_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or network (a.b.c.d or a.b.c.d/nn): {value!r}") from None
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only the local machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


IpAddress = Annotated[str, AfterValidator(_check_ip_address)]
IpNetwork = Annotated[str, AfterValidator(_check_ip_network)]

Backlog = Annotated[int, Field(ge=1, le=65535)]
"""Connections the kernel completes and holds until the broker accepts them (listen(2); Linux
caps it at net.core.somaxconn). asyncio's own default of 100 is too small for a fleet of
devices reconnecting at once."""


class Section(BaseModel):
    """A settings section: unknown keys and wrong types are refused, and it never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
