"""Where settings come from, in order: the HOCON file, its override file, ``EDGEMQ_*``, the CLI.

- The file is NanoMQ's ``nanomq.conf`` layout, read with pyhocon (includes work); an include
  that is missing or unreadable makes the file invalid (pyhocon would skip it and carry on),
  whatever the logging configuration: edgemq makes pyhocon treat every include as required.
- The override file (``edgemq.override.conf`` beside ``edgemq.conf``) holds what the admin API
  changed (v1 req 12); it is written atomically and leaves the user's file and comments alone,
  as JSON (valid HOCON) that reads back exactly or is not written.
- ``EDGEMQ_<SECTION>__<KEY>=value`` (nested with ``__``) overrides both; values are HOCON
  (``EDGEMQ_MQTT__MAX_PACKET_SIZE=2MB``).
- Command-line flags come last.

A relative path in ``FILE_PATH_KEYS`` (``persistence.path``) is made absolute against the
directory of the file that holds it (an included file's own; a change requested through the
admin API: the override file's), and against the current directory when the environment or a
flag sets it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException
from pyparsing import ParseBaseException

from broker.config.locations import Located, scan
from broker.config.settings import BrokerSettings
from broker.config.store_settings import FILE_PATH_KEYS

__all__ = ["MASK", "ConfigError", "ConfigSource", "deep_merge", "masked", "override_path", "override_text"]

MASK = "******"
ENV_PREFIX = "EDGEMQ_"
SECRET_KEYS = frozenset({"password", "keypass", "key_password", "secret_key", "secret"})
_OVERRIDE_HEADER = "# Written by edgemq (admin API req 12). Loaded after {name}; edit or delete freely.\n"


class ConfigError(Exception):
    """An invalid configuration: every problem, each naming the source, line (if known) and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def override_path(conf: Path) -> Path:
    """``dir/edgemq.conf`` -> ``dir/edgemq.override.conf``."""
    return conf.with_name(f"{conf.stem}.override{conf.suffix or '.conf'}")


_includes_required: ContextVar[bool] = ContextVar("includes_required", default=False)
_pyhocon_parse_file = ConfigFactory.parse_file.__func__
_pyhocon_parse_url = ConfigFactory.parse_URL.__func__


def _parse_included_file(cls: type[ConfigFactory], filename: str, *args: Any, **kwargs: Any) -> Any:
    """pyhocon's loader of included files; while edgemq parses, every include is required (an
    unreadable one raises OSError instead of being skipped with a warning)."""
    if _includes_required.get():
        kwargs["required"] = True
    return _pyhocon_parse_file(cls, filename, *args, **kwargs)


def _parse_included_url(cls: type[ConfigFactory], url: str, *args: Any, **kwargs: Any) -> Any:
    """pyhocon's loader of included URLs; while edgemq parses, a URL is never fetched."""
    if _includes_required.get():
        raise ConfigException(f"include {url}: only files can be included")
    return _pyhocon_parse_url(cls, url, *args, **kwargs)


# pyhocon's include parse action calls these through the class: replacing them is the only way
# to make every include required; outside edgemq's parsing they behave as pyhocon's own.
ConfigFactory.parse_file = classmethod(_parse_included_file)
ConfigFactory.parse_URL = classmethod(_parse_included_url)


@contextlib.contextmanager
def _every_include_required() -> Iterator[None]:
    """pyhocon parses inside the block: an include it cannot read raises OSError."""
    reset = _includes_required.set(True)
    try:
        yield
    finally:
        _includes_required.reset(reset)


def _unreadable_include(where: str, exc: OSError) -> ConfigError:
    return ConfigError([f"{where}: an included file cannot be read ({exc.filename}: {exc.strerror})"])


def _key(key: object) -> str:
    text = str(key)
    # pyhocon keeps the quotes of a quoted key that holds a dot ("a.b" = 1)
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def _plain(value: Any) -> Any:
    if isinstance(value, ConfigTree | dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def read_hocon(path: Path) -> dict[str, Any]:
    """The file as plain data; syntax errors name the file and line."""
    return _read_located(path)[0]


def _read_located(path: Path) -> tuple[dict[str, Any], Located]:
    """The file as plain data, and where each key is; every include must be there and readable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
    located = scan(path, text)
    if located.problems:
        raise ConfigError(located.problems)
    with _every_include_required():
        try:
            tree = ConfigFactory.parse_string(text, basedir=os.path.dirname(str(path)), resolve=True)
        except ParseBaseException as exc:
            raise ConfigError([f"{path}:{exc.lineno}: syntax error: {exc.msg}"]) from None
        except OSError as exc:
            raise _unreadable_include(str(path), exc) from None
        except (ConfigException, ValueError) as exc:
            raise ConfigError([f"{path}: {exc}"]) from None
        except Exception as exc:  # pyhocon fails in its own ways on some input (e.g. recursion)
            raise ConfigError([f"{path}: cannot be read as HOCON: {exc!r}"]) from None
    data = _plain(tree)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected an object of settings, not a list"])
    return data, located


def _hocon_value(name: str, text: str) -> Any:
    try:
        with _every_include_required():
            return _plain(ConfigFactory.parse_string(f"v = {text}")["v"])
    except OSError as exc:
        raise _unreadable_include(f"environment {name}", exc) from None
    except Exception:  # not HOCON: the text itself, for the settings to check
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
        node[leaf] = _hocon_value(name, value)
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


def override_text(data: dict[str, Any]) -> str:
    """The override file's text for ``data``: JSON (valid HOCON) with every character as it is.

    ConfigError names each value that would not read back exactly (a control character, a
    key holding a quote or a backslash), so nothing is written that means something else."""
    body = json.dumps(data, indent=2, ensure_ascii=False)
    try:
        body.encode("utf-8")
        read_back = _plain(ConfigFactory.parse_string(body, resolve=False))
    except (UnicodeEncodeError, ParseBaseException, ConfigException, ValueError):
        read_back = None
    if read_back != data:
        keys = list(_differences(data, read_back)) or ["(the change)"]
        raise ConfigError([f"{key}: cannot be stored exactly in the override file" for key in keys])
    return body + "\n"


def _differences(wanted: Any, read_back: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(wanted, dict) and isinstance(read_back, dict):
        for key, value in wanted.items():
            yield from _differences(value, read_back.get(key, _MISSING), f"{prefix}{key}.")
        return
    if isinstance(wanted, list) and isinstance(read_back, list) and len(wanted) == len(read_back):
        for index, (value, back) in enumerate(zip(wanted, read_back, strict=True)):
            yield from _differences(value, back, f"{prefix}{index}.")
        return
    if wanted != read_back or type(wanted) is not type(read_back):
        yield prefix.rstrip(".")


_MISSING = object()


@dataclass(frozen=True)
class _Layer:
    """One source of settings: its name, its data, where its keys are (files only), and the
    directory its relative paths are relative to (None: the current directory)."""

    name: str
    data: dict[str, Any]
    located: Located | None = None
    directory: Path | None = None

    def base_of(self, key: tuple[str, ...]) -> Path:
        """The absolute directory a relative path at ``key`` of this layer is relative to."""
        found = self.located.lines.get(key) if self.located is not None else None
        if found is not None:
            return found[0].parent.absolute()
        return (self.directory or Path.cwd()).absolute()


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

    def layers(self, override: dict[str, Any] | None = None) -> list[_Layer]:
        """Every layer, lowest precedence first; ``override`` replaces the override file's data."""
        layers: list[_Layer] = []
        if self.path is not None:
            directory = self.path.parent
            layers.append(_Layer(str(self.path), *_read_located(self.path), directory=directory))
            assert self.override is not None
            if override is not None:
                layers.append(_Layer("requested change", override, directory=directory))
            elif self.override.exists():
                layers.append(_Layer(str(self.override), *_read_located(self.override), directory=directory))
        layers.append(_Layer("environment", env_layer(self.env)))
        layers.append(_Layer("command line", self.cli))
        return layers

    def load(self, override: dict[str, Any] | None = None) -> BrokerSettings:
        """Validated settings from every layer; ConfigError lists every problem in file and line order."""
        layers = self.layers(override)
        merged: dict[str, Any] = {}
        for layer in layers:
            merged = deep_merge(merged, layer.data)
        merged = deep_merge(merged, _absolute_paths(merged, layers))
        try:
            settings = BrokerSettings.model_validate(merged)
        except ValidationError as exc:
            described = sorted(_describe(error, layers) for error in exc.errors())
            raise ConfigError([text for _, text in described]) from None
        return _defaults_beside(settings, self.path.parent.absolute()) if self.path is not None else settings

    def shadowing_layers(self, path: list[str]) -> list[str]:
        """The layers above the override file (environment, command line) that set ``path``."""
        above = [("environment", env_layer(self.env)), ("command line", self.cli)]
        return [name for name, data in above if _has_path(data, path)]

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
        text = _OVERRIDE_HEADER.format(name=self.path.name) + override_text(data)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold passwords
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            shutil.copy2(target, target.with_name(target.name + ".bak"))
        os.replace(temporary, target)


def _absolute_paths(merged: dict[str, Any], layers: list[_Layer]) -> dict[str, Any]:
    """The relative paths of ``FILE_PATH_KEYS`` in ``merged``, made absolute against the directory
    of the layer (file) each came from, to merge over it (the layers' data stays as written)."""
    patch: dict[str, Any] = {}
    for key in FILE_PATH_KEYS:
        *parents, leaf = key
        node: Any = merged
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(leaf) if isinstance(node, dict) else None
        if not isinstance(value, str) or not value or os.path.isabs(value):
            continue
        source = next(layer for layer in reversed(layers) if _has_path(layer.data, list(key)))
        target = patch
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = os.path.join(source.base_of(key), value)  # keeps a trailing "/" for the check
    return patch


def _defaults_beside(settings: BrokerSettings, directory: Path) -> BrokerSettings:
    """``settings`` with the relative defaults of ``FILE_PATH_KEYS`` (no layer set them) made
    absolute against the configuration file's directory."""
    for section, leaf in FILE_PATH_KEYS:
        values = getattr(settings, section)
        value = getattr(values, leaf)
        if not os.path.isabs(value):
            values = values.model_copy(update={leaf: os.path.join(directory, value)})
            settings = settings.model_copy(update={section: values})
    return settings


def _describe(error: Any, layers: list[_Layer]) -> tuple[tuple[int, int, int], str]:
    """(sort key, text) of one validation error, naming the layer, file and line of the value
    (or of the object that lacks it)."""
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    depth, index = max((_depth(layer.data, loc), index) for index, layer in enumerate(layers))
    if depth == 0:
        return (len(layers), 0, 0), f"{key}: {message}"
    layer = layers[index]
    found = layer.located.find(tuple(loc)) if layer.located is not None else None
    if layer.located is None or found is None:
        return (index, 0, 0), f"{layer.name}: {key}: {message}"
    file, line = found
    return (index, layer.located.rank(file), line), f"{file}:{line}: {key}: {message}"


def _depth(data: Any, path: list[str]) -> int:
    """How many leading parts of ``path`` ``data`` holds."""
    for depth, key in enumerate(path):
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return depth
    return len(path)


def _has_path(data: Any, path: list[str]) -> bool:
    return _depth(data, path) == len(path)
