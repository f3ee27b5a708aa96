"""The ``plugins`` section: amqtt broker plugins found, checked and handed to amqtt's plugin manager.

A plugin is named by its dotted class path (``amqtt.plugins.sys.broker.BrokerSysPlugin``) or by
the name amqtt registers it under (``broker_sys``, entry point group ``amqtt.broker.plugins``).
Its options fill the plugin's ``Config`` dataclass exactly as amqtt does it (dacite, strict), so
``edgemq check-config`` refuses what amqtt would refuse at start, naming the plugin and why.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

from amqtt.errors import PluginError as AmqttPluginError
from amqtt.errors import PluginLoadError
from amqtt.plugins.base import BasePlugin
from amqtt.utils import import_string
from dacite import Config as DaciteConfig
from dacite import DaciteError, from_dict

from broker.config.plugin_settings import PluginOptions

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "amqtt_plugins", "check_plugins", "loading_plugins"]

ENTRY_POINT_GROUP = "amqtt.broker.plugins"


class PluginError(Exception):
    """A configured plugin that cannot be loaded; the message names it (``plugins.NAME: why``)."""


def _plugin_class(name: str) -> type[BasePlugin[Any]]:
    """The class ``name`` stands for (PluginError: none, or not an amqtt broker plugin)."""
    if "." in name:
        try:
            found = import_string(name)
        except ImportError as exc:
            raise PluginError(f"plugins.{name}: cannot import it: {exc}") from None
    else:
        registered = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in registered:
            known = ", ".join(sorted(registered)) or "none"
            raise PluginError(f"plugins.{name}: no plugin of that name (a dotted class path, or one of: {known})")
        try:
            found = registered[name].load()
        except ImportError as exc:
            raise PluginError(f"plugins.{name}: cannot import it: {exc}") from None
    if not isinstance(found, type) or not issubclass(found, BasePlugin):
        raise PluginError(f"plugins.{name}: not an amqtt plugin class (a subclass of amqtt.plugins.base.BasePlugin)")
    return found


def _check_options(name: str, plugin: type[BasePlugin[Any]], options: dict[str, Any]) -> None:
    """Fill the plugin's ``Config`` the way amqtt's plugin manager will (PluginError: refused)."""
    try:
        from_dict(data_class=plugin.Config, data=options, config=DaciteConfig(strict=True))
    except DaciteError as exc:
        raise PluginError(f"plugins.{name}: {exc}") from None
    except TypeError as exc:
        raise PluginError(f"plugins.{name}: its Config is not a dataclass ({exc})") from None


def amqtt_plugins(options: PluginOptions) -> dict[str, dict[str, Any]]:
    """amqtt's ``plugins`` configuration for ``options``: each plugin by its class path, checked."""
    plugins: dict[str, dict[str, Any]] = {}
    for name, plugin_options in options.items():
        plugin = _plugin_class(name)
        _check_options(name, plugin, plugin_options)
        plugins[f"{plugin.__module__}.{plugin.__qualname__}"] = plugin_options
    return plugins


def check_plugins(options: PluginOptions) -> None:
    """Raise PluginError for the first plugin that cannot be loaded as configured."""
    amqtt_plugins(options)


@contextlib.contextmanager
def loading_plugins() -> Iterator[None]:
    """Around amqtt's plugin manager loading the plugins: its load and init failures (a plugin's
    constructor raised) become PluginError; its warning that BrokerSysPlugin's psutil will become
    optional is dropped (edgemq depends on psutil itself)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*psutil.*", category=DeprecationWarning)
            yield
    except (AmqttPluginError, PluginLoadError) as exc:
        cause = exc.__cause__
        detail = f"{exc}" + (f": {cause.__class__.__name__}: {cause}" if cause is not None else "")
        raise PluginError(f"plugins: {detail}") from None
