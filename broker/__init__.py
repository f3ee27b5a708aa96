"""edgemq: an embeddable MQTT broker (amqtt) with a NanoMQ-compatible admin API."""

from broker.config_file import ConfigError, ConfigSource
from broker.helpers import Capture
from broker.lifecycle import EdgeBroker
from broker.settings import Auth, BrokerSettings, HttpServer, Listeners, Mqtt, TcpListener
from broker.state import BrokerState, ClientInfo, ClientSnapshot, RoutedMessage, Stats, SubscriptionSnapshot
from broker.threaded import AsyncThreadedBroker, ThreadedBroker

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
