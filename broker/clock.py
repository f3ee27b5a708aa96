"""Time as a parameter: where time decides behaviour (keep-alive, the CONNECT deadline), the
broker asks a ``Clock``; tests drive a manual one (broker/testing/clock.py) instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "LoopClock", "Timer"]


class Timer(Protocol):
    """A scheduled call that can be called off."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Now, and calls at a later time."""

    def time(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        """Call ``callback(*args)`` on the event loop's thread ``delay`` seconds from now."""
        ...


class LoopClock:
    """The running event loop's clock and timers (what the broker uses unless told otherwise)."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)
