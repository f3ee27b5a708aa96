"""What the admin API may ask of the running broker, beyond reading the shared state."""

from __future__ import annotations

from typing import Protocol

__all__ = ["BrokerControl"]


class BrokerControl(Protocol):
    """Implemented by the broker lifecycle object; the admin API depends only on this."""

    @property
    def mqtt_ready(self) -> bool:
        """Whether every MQTT listener accepts connections."""
        ...
