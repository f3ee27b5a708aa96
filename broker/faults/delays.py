"""``DelayLine``: the copies a delay fault holds back on one connection, in the order they leave.

A held copy leaves once the copy before it in the line has left and its own delay has run out
(or its fault was undone). Copies the fault does not match pass the held ones, as latency on
some topics would let them; but one routed while held copies are due (released, or their delay
over) and still leaving joins the line behind them, so an undo never lets a later copy
overtake the copies it released. When the connection ends, the copies still waiting are handed
to their session (``close``); a reset or a stop of the broker discards them (``discard``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["DelayLine", "HeldCopy"]

T = TypeVar("T")


class HeldCopy:
    """One copy in a line: what it is (for its session, should the connection end), what it
    waits for (``ready``) and its delivery task (``attach``)."""

    __slots__ = ("_line", "_publish", "data", "deadline", "left", "qos", "ready", "released", "seq", "task", "topic")

    def __init__(
        self,
        line: DelayLine,
        copy: tuple[str, bytes | bytearray, int, int | None],
        deadline: float,
        released: asyncio.Future[None] | None,
        before: asyncio.Future[None] | None,
    ) -> None:
        self._line = line
        self.topic, self.data, self.qos, self.seq = copy
        self.deadline, self.released = deadline, released
        self.left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the copy has left the line (its delivery began) or was stopped."""
        self.ready: asyncio.Future[None] = asyncio.ensure_future(_wait(before, deadline, released))
        self.task: asyncio.Future[Any] | None = None
        self._publish: Coroutine[Any, Any, Any] | None = None

    @property
    def due(self) -> bool:
        """Whether nothing but the copies before it holds it back any more."""
        released = self.released
        return released is None or released.done() or asyncio.get_running_loop().time() >= self.deadline

    def run(self, publish: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """What the copy's delivery task runs: ``publish`` once the copy may leave."""
        self._publish = publish
        return self._run(publish)

    async def _run(self, publish: Coroutine[Any, Any, T]) -> T:
        await self.ready  # a cancelled delivery (an evicted QoS 0 copy) cancels its wait too
        self._line.gone(self)
        return await publish

    def attach(self, task: asyncio.Future[Any]) -> None:
        """``task`` runs ``run``'s coroutine: a copy whose task ends before it left leaves the line."""
        self.task = task
        task.add_done_callback(self._ended)

    def _ended(self, _: object) -> None:
        if not self.left.done():
            self.stop()
            self._line.gone(self)

    def stop(self) -> None:
        """End the wait and the delivery task of a copy that has not left."""
        for waiting in (self.ready, self.task):
            if waiting is not None:
                waiting.cancel()
        if self._publish is not None:
            self._publish.close()  # unrun (a task cancelled before its first step never runs it)
        if not self.left.done():
            self.left.set_result(None)


class DelayLine:
    """The held copies of one connection (see the module docstring). ``keep`` hands one to the
    session when the connection ends: False if the copy is lost instead (counted as dropped).
    ``lines`` is the registry of the broker's faults, which a reset or a stop empties."""

    def __init__(self, keep: Callable[[HeldCopy], bool], lines: set[DelayLine]) -> None:
        self._keep = keep
        self._lines = lines
        self.waiting: list[HeldCopy] = []
        """The copies that have not left yet, in the order they leave."""

    def hold(
        self, copy: tuple[str, bytes | bytearray, int, int | None], delay: float, released: asyncio.Future[None]
    ) -> HeldCopy:
        """Hold a copy (topic, payload, QoS, row in the store) for ``delay`` seconds or until
        ``released``, behind every copy the line holds."""
        deadline = asyncio.get_running_loop().time() + delay
        return self._add(copy, deadline, released, len(self.waiting))

    def behind_due(self, copy: tuple[str, bytes | bytearray, int, int | None]) -> HeldCopy | None:
        """Put an undelayed copy behind the copies about to leave (the line's due ones, from its
        head), or return None if none is."""
        position = 0
        while position < len(self.waiting) and self.waiting[position].due:
            position += 1
        return self._add(copy, 0.0, None, position) if position else None

    def _add(
        self,
        copy: tuple[str, bytes | bytearray, int, int | None],
        deadline: float,
        released: asyncio.Future[None] | None,
        position: int,
    ) -> HeldCopy:
        before = self.waiting[position - 1].left if position else None
        held = HeldCopy(self, copy, deadline, released, before)
        self.waiting.insert(position, held)
        self._lines.add(self)
        return held

    def gone(self, copy: HeldCopy) -> None:
        """``copy`` leaves the line (its delivery begins, or it was cancelled)."""
        if not copy.left.done():
            copy.left.set_result(None)
        if copy in self.waiting:
            self.waiting.remove(copy)

    def close(self) -> int:
        """The connection ended: stop every waiting copy and hand it to the session; return
        how many were lost instead."""
        return sum(not self._keep(copy) for copy in self._stop_all())

    def discard(self) -> None:
        """Stop every waiting copy, neither handed over nor counted (the broker resets or stops)."""
        self._stop_all()

    def _stop_all(self) -> list[HeldCopy]:
        waiting, self.waiting = self.waiting, []
        self._lines.discard(self)
        for copy in waiting:
            copy.stop()
        return waiting


async def _wait(before: asyncio.Future[None] | None, deadline: float, released: asyncio.Future[None] | None) -> None:
    """Until ``before`` is done (the copy ahead has left), then until ``deadline`` or ``released``."""
    if before is not None:
        await asyncio.wait((before,))  # not cancelled with this wait: it is the other copy's
    remaining = deadline - asyncio.get_running_loop().time()
    if released is not None and remaining > 0 and not released.done():
        await asyncio.wait((released,), timeout=remaining)  # shared by every copy of the fault
