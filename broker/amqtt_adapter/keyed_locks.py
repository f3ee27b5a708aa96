"""One asyncio lock per key (a client id), kept only while someone holds or waits for it."""

from __future__ import annotations

import asyncio

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it.

    ``acquire`` then ``release`` in a ``finally`` (a plain pair: an async context manager
    generator costs more than the rest of the lock on every connect)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def release(self, key: str) -> None:
        self._locks[key][0].release()
        self._forget(key)

    def _forget(self, key: str) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)
