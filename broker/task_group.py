"""``TaskGroup``: the broker's tasks, named, tracked in one place and ended together at stop.

Every task that outlives the call that made it goes in: a task per MQTT connection (TCP, TLS
and websockets' handler tasks), and restarts requested through the admin API. The copies a
connection delivers in the background belong to their ``Connection`` and end with it; uvicorn
keeps the admin API's request tasks. ``EdgeBroker.stop`` closes listeners and connections in
order, then cancels whatever is still here.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["TaskGroup"]

T = TypeVar("T")


class TaskGroup:
    """Named tasks of one broker."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return sum(not task.done() for task in self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coro`` in a new task called ``name``, kept here until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def adopt(self, task: asyncio.Task[Any], name: str) -> None:
        """Keep a task another library made (websockets' connection handler), renamed ``name``."""
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def running(self, name: str) -> list[asyncio.Task[Any]]:
        """The tasks called ``name`` that have not ended."""
        return [task for task in self._tasks if not task.done() and task.get_name() == name]

    def names(self) -> collections.Counter[str]:
        """How many tasks of each name are running."""
        return collections.Counter(task.get_name() for task in self._tasks if not task.done())

    async def cancel(self, timeout: float) -> list[str]:
        """Cancel every task still running and wait up to ``timeout`` seconds for them to end;
        the names of those that were running (for the log)."""
        left = [task for task in self._tasks if not task.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=timeout)
        return sorted(task.get_name() for task in left)
