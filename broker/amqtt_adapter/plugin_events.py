"""amqtt's plugin events as edgemq fires them: known up front, guarded, free when nobody listens.

amqtt's plugin manager collects every ``on_<event>`` coroutine of the loaded plugins.
``PluginEvents`` wraps those callbacks once, at start, so a plugin that raises is logged (once
per plugin and event, with its traceback) instead of surfacing as "Task exception was never
retrieved", tells the broker which events anyone listens to (the broker builds an event's
arguments only then) and fires the broker's events itself, one task per event (amqtt keeps
the start, shutdown and packet events). A handler that
runs longer than ``auth.plugin_timeout`` is cancelled (and logged once): hanging handlers would
pile up a task per event and hold the shutdown, which waits for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.events import BrokerEvents
from amqtt.plugins.manager import PluginManager

__all__ = ["PluginEvents"]

log = logging.getLogger("edgemq.plugins")

Callback = Callable[..., Coroutine[Any, Any, None]]


class PluginEvents:
    """The events the loaded plugins listen to, their callbacks guarded."""

    def __init__(self, manager: PluginManager[Any], time_limit: Callable[[], float]) -> None:
        callbacks: dict[str, list[Callback]] = manager._event_plugin_callbacks  # amqtt keeps them privately
        self._time_limit = time_limit
        self._reported: set[tuple[str, str]] = set()
        for event, methods in callbacks.items():
            callbacks[event] = [self._guarded(str(event), method) for method in methods]
        self._handlers = {str(event): list(methods) for event, methods in callbacks.items() if methods}
        self._running: set[asyncio.Task[None]] = set()
        self.message_received = BrokerEvents.MESSAGE_RECEIVED.value in self._handlers
        self.message_broadcast = BrokerEvents.MESSAGE_BROADCAST.value in self._handlers
        self.retained_message = BrokerEvents.RETAINED_MESSAGE.value in self._handlers

    def fire(self, event: BrokerEvents, **kwargs: Any) -> None:
        """Hand a broker event to its handlers: one task runs them in turn, in the order the
        plugins were loaded (amqtt's manager makes a task per handler and keeps them in a list it
        searches to remove each one)."""
        handlers = self._handlers.get(event.value)
        if handlers:
            task = asyncio.get_running_loop().create_task(_run(handlers, kwargs))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        """Wait until the handlers of the events fired so far have finished (each within its
        time limit): the shutdown runs them to the end before the plugins are closed."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _guarded(self, event: str, method: Callback) -> Callback:
        bound = getattr(method, "func", method)  # amqtt's EventLoggerPlugin hands out partials
        plugin = type(getattr(bound, "__self__", bound)).__name__

        async def guarded(**kwargs: Any) -> None:
            limit = self._time_limit()
            try:
                async with asyncio.timeout(limit):
                    await method(**kwargs)
            except TimeoutError:  # a handler may not hold a task (and the shutdown) for ever
                self._report(plugin, event, f"did not finish within {limit}s: cancelled")
            except Exception:  # a plugin's fault is its own: the broker goes on
                self._report(plugin, event, "failed", exc_info=True)

        guarded.__qualname__ = f"{plugin}.on_{event}"
        return guarded

    def _report(self, plugin: str, event: str, what: str, *, exc_info: bool = False) -> None:
        """Log a handler's fault once per plugin and event."""
        if (plugin, event) in self._reported:
            return
        self._reported.add((plugin, event))
        log.error("plugin %s on %s %s (not logged again for it)", plugin, event, what, exc_info=exc_info)


async def _run(handlers: list[Callback], kwargs: dict[str, Any]) -> None:
    for handler in handlers:  # each is guarded: it never raises
        await handler(**kwargs)
