"""Changing the configuration while the broker runs (v1 req 12): validate, write, apply live keys.

A change is refused (ConfigError, nothing written) when a value is out of range (the settings
models decide, as for the file), when a key is set by the environment or the command line
(which override the file, so the change would never take effect), when the admin API or an
MQTT listener would move to an address that cannot be bound now or that another of them would
take too (the admin would be locked out, or every MQTT client dropped, after the restart), or
when it cannot be stored exactly.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pydantic import ValidationError

from broker.config.settings import BrokerSettings
from broker.config.source import ConfigError, ConfigSource, deep_merge, masked, override_text, without_masks

log = logging.getLogger("edgemq")

__all__ = [
    "ConfigChange",
    "ConfigUnavailable",
    "as_started",
    "changed_keys",
    "live_view",
    "plan_change",
    "plan_live_change",
    "with_section",
]

# Keys (or key prefixes ending in ".") that take effect without a restart: they are read
# again on every request, connection or message.
LIVE_KEYS = (
    "http_server.username",
    "http_server.password",
    "http_server.max_body",
    "http_server.prometheus_auth",
    "auth.",
    "log.level",
    "mqtt.",
    "shutdown_timeout",
)


class ConfigUnavailable(Exception):
    """The broker was started without a configuration file, so there is nothing to write."""


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def changed_keys(old: BrokerSettings, new: BrokerSettings) -> list[str]:
    """Dotted keys whose value differs, in the order of the settings model."""
    before, after = _leaves(old.model_dump()), _leaves(new.model_dump())
    return [key for key in {**before, **after} if before.get(key) != after.get(key)]


def is_live(key: str) -> bool:
    """Whether a changed key applies without a restart."""
    return any(key == live or (live.endswith(".") and key.startswith(live)) for live in LIVE_KEYS)


def _with_values(base: BrokerSettings, source: BrokerSettings, keys: list[str]) -> BrokerSettings:
    data = base.model_dump()
    values = _leaves(source.model_dump())
    for key in keys:
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if key in values:
            node[leaf] = values[key]
        else:
            node.pop(leaf, None)
    return BrokerSettings.model_validate(data)


@dataclass(frozen=True)
class ConfigChange:
    """A validated change: what to write, what runs now, and what waits for a restart."""

    override: dict[str, Any]
    running: BrokerSettings
    restart_required: list[str]


def plan_change(source: ConfigSource, running: BrokerSettings, change: dict[str, Any]) -> ConfigChange:
    """Validate ``change`` against every layer (ConfigError if invalid); nothing is written here."""
    if source.path is None:
        raise ConfigUnavailable
    wanted = without_masks(change)
    override = deep_merge(source.override_data(), wanted)
    target = source.load(override=override)
    changed = changed_keys(running, target)
    problems = _shadowed(source, target, wanted) + _unbindable(running, target)
    if problems:
        raise ConfigError(problems)
    override_text(override)  # ConfigError if it would not read back exactly
    live = [key for key in changed if is_live(key)]
    return ConfigChange(override, _with_values(running, target, live), [k for k in changed if not is_live(k)])


def _shadowed(source: ConfigSource, target: BrokerSettings, wanted: dict[str, Any]) -> list[str]:
    """A problem for each key the change sets to a new value that the environment or the
    command line overrides (req 11's output posted back unchanged passes)."""
    keys = {
        key: layers
        for key, value in _leaves(wanted).items()
        if not isinstance(value, dict) and (layers := source.shadowing_layers(key.split(".")))
    }
    if not keys:
        return []
    effective = _leaves(target.model_dump())
    try:
        requested = _leaves(BrokerSettings.model_validate(deep_merge(target.model_dump(), wanted)).model_dump())
    except ValidationError:
        requested = {}
    return [
        f"{key}: set by the {' and the '.join(layers)}, which override the file: the change would not take effect"
        for key, layers in keys.items()
        if requested.get(key, _UNKNOWN) != effective.get(key)
    ]


_UNKNOWN = object()


def _addresses(settings: BrokerSettings) -> dict[str, tuple[str, int]]:
    """Setting key -> (host, port) of every address the broker listens on."""
    addresses = {"http_server": (settings.http_server.ip_addr, settings.http_server.port)}
    for name, listener in settings.listeners.configured():
        addresses[f"listeners.{name}.bind"] = listener.address
    return addresses


def _unbindable(running: BrokerSettings, target: BrokerSettings) -> list[str]:
    """A problem for each pair of addresses that would take one port, and for each other changed
    address that cannot be bound now (only numeric hosts are tried)."""
    before, after = _addresses(running), _addresses(target)
    changed = {key for key, address in after.items() if address != before.get(key)}
    clashes = [
        (one, other)
        for one, other in combinations(after, 2)
        if {one, other} & changed and _clash(after[one], after[other])
    ]
    problems = []
    for one, other in clashes:
        (host, port), other_host = after[one], after[other][0]
        problems.append(f"{one} and {other}: both would listen on port {port} ({host} and {other_host}): only one can")
    clashing = {key for pair in clashes for key in pair}
    for key in sorted(changed - clashing, key=list(after).index):
        host, port = after[key]
        # a restart closes an MQTT listener before it listens again: the port it holds is free by then
        if key.startswith("listeners.") and port == before.get(key, ("", 0))[1]:
            port = 0
        try:
            _try_bind(host, port)
        except OSError as exc:
            outcome = "the admin API would be unreachable" if key.startswith("http") else "the listener would not start"
            problems.append(f"{key}: cannot listen on {host}:{after[key][1]} ({exc.strerror or exc}): {outcome}")
    return problems


def _clash(one: tuple[str, int], other: tuple[str, int]) -> bool:
    """Whether two listening addresses take the same port: the same host, or one of them every
    address of the other's family (``::`` IPv4's too, on a dual-stack socket such as the admin
    API's); a host name may be any address."""
    (host, port), (other_host, other_port) = one, other
    if port != other_port or port == 0:
        return False
    try:
        addresses = ipaddress.ip_address(host), ipaddress.ip_address(other_host)
    except ValueError:
        return True
    if addresses[0].version != addresses[1].version:
        return any(address.version == 6 and address.is_unspecified for address in addresses)
    return addresses[0] == addresses[1] or any(address.is_unspecified for address in addresses)


def _try_bind(host: str, port: int) -> None:
    """Bind (and release) ``host``:``port`` as a listener would; OSError if that fails."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        return  # a host name: resolved when the listener starts, not here
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def live_view(settings: BrokerSettings) -> dict[str, Any]:
    """The live-changeable settings with their values (secrets masked), in the file's shape."""
    data = masked(settings.model_dump(mode="json"))
    view: dict[str, Any] = {}
    for key in LIVE_KEYS:
        *parents, leaf = key.rstrip(".").split(".")
        source, target = data, view
        for part in parents:
            source, target = source[part], target.setdefault(part, {})
        target[leaf] = source[leaf]
    return view


def plan_live_change(running: BrokerSettings, change: dict[str, Any]) -> BrokerSettings:
    """The running settings with ``change`` applied; ConfigError if it is invalid or not live."""
    try:
        target = BrokerSettings.model_validate(deep_merge(running.model_dump(), without_masks(change)))
    except ValidationError as exc:
        raise ConfigError([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    needs_restart = [key for key in changed_keys(running, target) if not is_live(key)]
    if needs_restart:
        raise ConfigError([f"{key}: cannot change without a restart (use v1 req 12)" for key in needs_restart])
    return target


def as_started(new: BrokerSettings, old: BrokerSettings) -> BrokerSettings:
    """``new`` with what applies only when the process starts kept as running: where the log
    goes, the store, the bridges, the plugins (they stay as they are across a restart)."""
    data = new.model_dump()
    data["log"] |= old.log.model_dump(include={"to", "dir", "file"})
    started = {key: getattr(old, key).model_dump() for key in ("persistence", "sqlite", "bridges")}
    started["plugins"] = old.plugins
    changed = [key for key, value in started.items() if data[key] != value]
    if changed:
        log.warning("restart: %s: applies when edgemq starts again; kept as running", ", ".join(changed))
    return BrokerSettings.model_validate(data | started)


def with_section(settings: BrokerSettings, section: str, values: dict[str, Any]) -> BrokerSettings:
    """``settings`` with one section replaced."""
    return BrokerSettings.model_validate(settings.model_dump() | {section: values})
