"""A clock the test moves by hand: timers fire when ``advance`` passes their time, not before."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["ManualClock"]


class _Timer:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self.callback, self.args, self.cancelled = callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Time stands still until ``advance``; give it to ``EdgeBroker(clock=...)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._scheduled: asyncio.Event | None = None

    def time(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> _Timer:
        timer = _Timer(callback, args)
        heapq.heappush(self._timers, (self._now + max(delay, 0.0), next(self._order), timer))
        if self._scheduled is not None:
            self._scheduled.set()
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, calling every timer that falls due, in time order
        (a timer a callback sets that falls due too is called as well)."""
        until = self._now + seconds
        while self._timers and self._timers[0][0] <= until:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self._now = until

    @property
    def pending(self) -> int:
        """Timers not called and not called off."""
        return sum(not timer.cancelled for _, _, timer in self._timers)

    async def wait_pending(self, count: int = 1, timeout: float = 5.0) -> None:
        """Return once at least ``count`` timers are pending (the broker armed them); TimeoutError
        after ``timeout`` seconds of real time."""
        async with asyncio.timeout(timeout):
            while self.pending < count:
                self._scheduled = asyncio.Event()
                await self._scheduled.wait()
