"""What the admin API may ask of the running broker, beyond reading the shared state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from broker.bridges.control import BridgeControls
from broker.mqtt.message_properties import MessageProperties

__all__ = ["BrokerControl", "MqttUnavailable"]


class MqttUnavailable(RuntimeError):
    """The MQTT side is not running (the broker is stopping): the admin API answers 503."""


class BrokerControl(Protocol):
    """Implemented by the broker lifecycle object; the admin API depends only on this."""

    @property
    def mqtt_ready(self) -> bool:
        """Whether every MQTT listener accepts connections."""
        ...

    def request_stop(self) -> None:
        """Stop the broker (the process, when run by the CLI) soon, not now."""
        ...

    def request_restart(self) -> None:
        """Restart the MQTT side soon, not now."""
        ...

    def update_config(self, change: dict[str, Any]) -> list[str]:
        """Validate, write and partly apply a configuration change; return the keys that need a restart.

        Raises ConfigUnavailable, ConfigError or OSError.
        """
        ...

    def apply_live(self, change: dict[str, Any]) -> None:
        """Apply live-changeable settings now, without writing them; raises ConfigError."""
        ...

    @property
    def mqtt_urls(self) -> list[str]:
        """The URL of every bound MQTT listener, plain TCP first."""
        ...

    @property
    def started_at(self) -> datetime:
        """When the broker started (UTC)."""
        ...

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        *,
        retain: bool,
        client_id: str | None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Route a message as an MQTT publish would, attributed to ``client_id`` if given, with
        the MQTT 5 ``properties`` its MQTT 5 subscribers get."""
        ...

    async def kick(self, client_id: str, *, clean: bool) -> bool:
        """Disconnect a client (its will is published); ``clean`` also discards its session."""
        ...

    def retained_messages(self) -> list[tuple[str, int, int]]:
        """(topic, qos, payload size) of every retained message."""
        ...

    def retained_message(self, topic: str) -> tuple[int, bytes] | None:
        """(qos, payload) of one retained message, or None."""
        ...

    def delete_retained(self, topic: str) -> bool:
        """Forget one retained message; False if there is none."""
        ...

    @property
    def bridges(self) -> BridgeControls:
        """The running bridges: settings, change, subscribe, unsubscribe, pause."""
        ...
