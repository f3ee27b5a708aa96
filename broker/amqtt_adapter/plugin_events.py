"""amqtt's plugin events as edgemq fires them: known up front, guarded, free when nobody listens.

amqtt's plugin manager collects every ``on_<event>`` coroutine of the loaded plugins and runs
each call in a task of its own. ``PluginEvents`` wraps those callbacks once, at start, so a
plugin that raises is logged (once per plugin and event, with its traceback) instead of
surfacing as "Task exception was never retrieved", and tells the broker which events anyone
listens to: the broker builds an event's arguments and fires it only then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.events import BrokerEvents, MQTTEvents
from amqtt.plugins.manager import PluginManager

__all__ = ["PluginEvents"]

log = logging.getLogger("edgemq.plugins")

Callback = Callable[..., Coroutine[Any, Any, None]]


class PluginEvents:
    """The events the loaded plugins listen to, their callbacks guarded."""

    def __init__(self, manager: PluginManager[Any]) -> None:
        callbacks: dict[str, list[Callback]] = manager._event_plugin_callbacks  # amqtt keeps them privately
        self._reported: set[tuple[str, str]] = set()
        for event, methods in callbacks.items():
            callbacks[event] = [self._guarded(str(event), method) for method in methods]
        self.heard = frozenset(str(event) for event, methods in callbacks.items() if methods)
        """The events some plugin listens to."""
        self.message_received = BrokerEvents.MESSAGE_RECEIVED.value in self.heard
        self.message_broadcast = BrokerEvents.MESSAGE_BROADCAST.value in self.heard
        self.retained_message = BrokerEvents.RETAINED_MESSAGE.value in self.heard
        self.packets = bool(self.heard & {MQTTEvents.PACKET_RECEIVED.value, MQTTEvents.PACKET_SENT.value})

    def _guarded(self, event: str, method: Callback) -> Callback:
        bound = getattr(method, "func", method)  # amqtt's EventLoggerPlugin hands out partials
        plugin = type(getattr(bound, "__self__", bound)).__name__

        async def guarded(**kwargs: Any) -> None:
            try:
                await method(**kwargs)
            except Exception:  # a plugin's fault is its own: the broker goes on
                if (plugin, event) not in self._reported:
                    self._reported.add((plugin, event))
                    log.exception("plugin %s failed on %s (further failures of it there are not logged)", plugin, event)

        guarded.__qualname__ = f"{plugin}.on_{event}"
        return guarded
