"""Where settings come from, in order: the HOCON file, its override file, ``EDGEMQ_*``, the CLI.

- The file is NanoMQ's ``nanomq.conf`` layout, read with pyhocon (includes work).
- The override file (``edgemq.override.conf`` beside ``edgemq.conf``) holds what the admin API
  changed (v1 req 12); it is written atomically and leaves the user's file and comments alone.
- ``EDGEMQ_<SECTION>__<KEY>=value`` (nested with ``__``) overrides both; values are HOCON
  (``EDGEMQ_MQTT__MAX_PACKET_SIZE=2MB``).
- Command-line flags come last.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException
from pyparsing import ParseBaseException

from broker.settings import BrokerSettings

__all__ = ["MASK", "ConfigError", "ConfigSource", "deep_merge", "masked", "override_path"]

MASK = "******"
ENV_PREFIX = "EDGEMQ_"
SECRET_KEYS = frozenset({"password", "keypass"})
_OVERRIDE_HEADER = "# Written by edgemq (admin API req 12). Loaded after {name}; edit or delete freely.\n"


class ConfigError(Exception):
    """An invalid configuration: every problem, each naming the source, line (if known) and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def override_path(conf: Path) -> Path:
    """``dir/edgemq.conf`` -> ``dir/edgemq.override.conf``."""
    return conf.with_name(f"{conf.stem}.override{conf.suffix or '.conf'}")


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree | dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def read_hocon(path: Path) -> dict[str, Any]:
    """The file as plain data; syntax errors name the file and line."""
    try:
        tree = ConfigFactory.parse_file(str(path), resolve=True)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except ParseBaseException as exc:
        raise ConfigError([f"{path}:{exc.lineno}: syntax error: {exc.msg}"]) from None
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    data = _plain(tree)
    assert isinstance(data, dict)
    return data


def _hocon_value(text: str) -> Any:
    try:
        return _plain(ConfigFactory.parse_string(f"v = {text}")["v"])
    except (ParseBaseException, ConfigException):
        return text


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """``EDGEMQ_HTTP_SERVER__PORT=9081`` -> ``{"http_server": {"port": 9081}}``."""
    layer: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        *parents, leaf = name[len(ENV_PREFIX) :].lower().split("__")
        node = layer
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _hocon_value(value)
    return layer


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: objects merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def masked(data: Any) -> Any:
    """A copy with every secret value replaced by ``******``."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in SECRET_KEYS and isinstance(value, str):
                out[key] = MASK
            elif key == "password" and isinstance(value, dict):  # auth.password: user -> password
                out[key] = dict.fromkeys(value, MASK)
            else:
                out[key] = masked(value)
        return out
    if isinstance(data, list):
        return [masked(v) for v in data]
    return data


def without_masks(data: Any) -> Any:
    """``data`` without the values that are ``******`` (they mean "unchanged")."""
    if isinstance(data, dict):
        return {k: without_masks(v) for k, v in data.items() if v != MASK}
    return data


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"(^|[\s{{.,]){re.escape(key)}\s*[=:{{]", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


@dataclass
class ConfigSource:
    """The layers one broker was configured from; ``load()`` reads them (again) into settings."""

    path: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cli: dict[str, Any] = field(default_factory=dict)

    @property
    def override(self) -> Path | None:
        """The override file beside the config file (it may not exist)."""
        return override_path(self.path) if self.path is not None else None

    def layers(self, override: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(source name, data), lowest precedence first; ``override`` replaces the override file's data."""
        layers: list[tuple[str, dict[str, Any]]] = []
        if self.path is not None:
            layers.append((str(self.path), read_hocon(self.path)))
            assert self.override is not None
            if override is not None:
                layers.append(("requested change", override))
            elif self.override.exists():
                layers.append((str(self.override), read_hocon(self.override)))
        layers.append(("environment", env_layer(self.env)))
        layers.append(("command line", self.cli))
        return layers

    def load(self, override: dict[str, Any] | None = None) -> BrokerSettings:
        """Validated settings from every layer; ConfigError lists every problem."""
        layers = self.layers(override)
        merged: dict[str, Any] = {}
        for _, data in layers:
            merged = deep_merge(merged, data)
        try:
            return BrokerSettings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError([self._describe(error, layers) for error in exc.errors()]) from None

    def override_data(self) -> dict[str, Any]:
        """What the override file holds now (empty if there is none)."""
        if self.override is None or not self.override.exists():
            return {}
        return read_hocon(self.override)

    def write_override(self, data: dict[str, Any]) -> None:
        """Replace the override file atomically, keeping the previous one as ``.bak``."""
        assert self.path is not None
        target = override_path(self.path)
        temporary = target.with_name(target.name + ".tmp")
        text = _OVERRIDE_HEADER.format(name=self.path.name) + json.dumps(data, indent=2) + "\n"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold passwords
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            shutil.copy2(target, target.with_name(target.name + ".bak"))
        os.replace(temporary, target)

    def _describe(self, error: Any, layers: list[tuple[str, dict[str, Any]]]) -> str:
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc)
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        source = next((name for name, data in reversed(layers) if _has_path(data, loc)), None)
        if source is None:
            return f"{key}: {message}"
        if self.path is not None and source in (str(self.path), str(self.override)) and Path(source).exists():
            line = _line_of(Path(source).read_text(encoding="utf-8", errors="replace"), loc[-1])
            if line is not None:
                return f"{source}:{line}: {key}: {message}"
        return f"{source}: {key}: {message}"


def _has_path(data: Any, path: list[str]) -> bool:
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return False
    return True
