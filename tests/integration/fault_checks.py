"""What every fault test checks once the fault is cleared: the broker is as healthy as before."""

from __future__ import annotations

import asyncio
from typing import Any

from broker import EdgeBroker
from broker.mqtt.stream_connection import TASK_NAME
from broker.testing.helpers import wait_until
from tests.helpers import WAIT


def broker_tasks() -> set[asyncio.Task[Any]]:
    """The running tasks of edgemq's own code (a fault's delayed copies among them), but the
    connection tasks, which ``assert_healthy`` counts."""
    tasks = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and task.get_name() != TASK_NAME and code is not None and "/broker/" in code.co_filename:
            tasks.add(task)
    return tasks


async def assert_healthy(broker: EdgeBroker, before: set[asyncio.Task[Any]]) -> None:
    """No fault in force; the tasks edgemq ran ``before`` the fault are all it runs once the
    tasks the fault started have ended (within the wait limit); one connection task per
    connected client (no socket left open by a fault); nothing counted as in flight."""
    assert broker.faults.active_faults == []
    assert not broker.faults.active
    started = broker_tasks() - before
    if started:
        _, pending = await asyncio.wait(started, timeout=WAIT)
        assert not pending, f"tasks the fault left running: {pending}"
    connected = sum(client.connected for client in broker.state.clients())
    tasks = broker.tasks.names()
    assert tasks[TASK_NAME] == connected, (tasks, connected)


async def assert_nothing_was_left_for(broker: EdgeBroker, client_id: str, drops: int = 0) -> None:
    """Once ``client_id``'s clean session has ended, req 2 counts only the ``drops`` the test
    made: a copy still queued or unacknowledged when a session ends is counted as dropped."""
    await wait_until(broker.state, lambda state: state.client(client_id) is None, WAIT)
    assert broker.stats().message_drop == drops
