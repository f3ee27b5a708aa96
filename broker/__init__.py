"""edgemq: an embeddable MQTT broker (amqtt) with a NanoMQ-compatible admin API."""

from broker.lifecycle import EdgeBroker
from broker.settings import Auth, BrokerSettings, HttpServer, MqttListener
from broker.state import BrokerState, ClientInfo, ClientSnapshot, Stats, SubscriptionSnapshot

__all__ = [
    "Auth",
    "BrokerSettings",
    "BrokerState",
    "ClientInfo",
    "ClientSnapshot",
    "EdgeBroker",
    "HttpServer",
    "MqttListener",
    "Stats",
    "SubscriptionSnapshot",
]
