"""edgemq: an embeddable MQTT broker (amqtt) with a NanoMQ-compatible admin API.

The names below are imported on first use (PEP 562), so importing a submodule, such as the
pytest plugin ``broker.testing.pytest_plugin``, does not load the broker, amqtt and the admin API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.config.settings import Auth, BrokerSettings, HttpServer, Listeners, Mqtt, TcpListener
    from broker.config.source import ConfigError, ConfigSource
    from broker.lifecycle import EdgeBroker
    from broker.state import BrokerState, ClientInfo, ClientSnapshot, RoutedMessage, Stats, SubscriptionSnapshot
    from broker.testing.helpers import Capture
    from broker.testing.threaded import AsyncThreadedBroker, ThreadedBroker

_EXPORTS = {
    "AsyncThreadedBroker": "broker.testing.threaded",
    "Auth": "broker.config.settings",
    "BrokerSettings": "broker.config.settings",
    "BrokerState": "broker.state",
    "Capture": "broker.testing.helpers",
    "ClientInfo": "broker.state",
    "ClientSnapshot": "broker.state",
    "ConfigError": "broker.config.source",
    "ConfigSource": "broker.config.source",
    "EdgeBroker": "broker.lifecycle",
    "HttpServer": "broker.config.settings",
    "Listeners": "broker.config.settings",
    "Mqtt": "broker.config.settings",
    "RoutedMessage": "broker.state",
    "Stats": "broker.state",
    "SubscriptionSnapshot": "broker.state",
    "TcpListener": "broker.config.settings",
    "ThreadedBroker": "broker.testing.threaded",
}

__all__ = [
    "AsyncThreadedBroker",
    "Auth",
    "BrokerSettings",
    "BrokerState",
    "Capture",
    "ClientInfo",
    "ClientSnapshot",
    "ConfigError",
    "ConfigSource",
    "EdgeBroker",
    "HttpServer",
    "Listeners",
    "Mqtt",
    "RoutedMessage",
    "Stats",
    "SubscriptionSnapshot",
    "TcpListener",
    "ThreadedBroker",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access, then keep it in this module."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's attributes, including the public names not imported yet."""
    return sorted(set(globals()) | set(__all__))
