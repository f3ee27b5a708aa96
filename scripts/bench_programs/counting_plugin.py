"""An amqtt plugin listening to one event (a message received), for the fanin_plugins benchmark."""

from __future__ import annotations

from typing import Any

from amqtt.plugins.base import BasePlugin


class ReceivedCounter(BasePlugin):  # type: ignore[misc]
    """Counts the messages the broker received."""

    received = 0

    async def on_broker_message_received(self, *, client_id: str | None, message: Any) -> None:
        ReceivedCounter.received += 1
