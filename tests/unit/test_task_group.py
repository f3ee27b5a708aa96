"""TaskGroup: named tasks tracked until they end, cancelled together."""

from __future__ import annotations

import asyncio

import pytest

from broker.task_group import TaskGroup

pytestmark = pytest.mark.anyio


async def test_tasks_are_counted_by_name_until_they_end() -> None:
    """A spawned task shows under its name while it runs and leaves the group when it ends."""
    group = TaskGroup()
    release = asyncio.Event()
    task = group.spawn(release.wait(), "waiter")
    assert task.get_name() == "waiter"
    assert group.names() == {"waiter": 1}
    assert group.running("waiter") == [task]
    release.set()
    await task
    assert len(group) == 0
    assert group.running("waiter") == []


async def test_cancel_ends_every_task_and_names_them() -> None:
    """cancel stops spawned and adopted tasks within the bound and says which were still running."""
    group = TaskGroup()
    spawned = group.spawn(asyncio.Event().wait(), "spawned")
    adopted = asyncio.get_running_loop().create_task(asyncio.Event().wait())
    group.adopt(adopted, "adopted")
    assert await group.cancel(5.0) == ["adopted", "spawned"]
    assert spawned.cancelled()
    assert adopted.cancelled()
    assert adopted.get_name() == "adopted"
    assert len(group) == 0
