"""What the admin API may ask of the running broker, beyond reading the shared state."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["BrokerControl"]


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
