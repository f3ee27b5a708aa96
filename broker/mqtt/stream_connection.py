"""``StreamConnection``: one TCP or TLS connection of the MQTT side, as an asyncio protocol.

asyncio's streams give every connection a StreamReaderProtocol, a StreamReader and a
StreamWriter and read through several layers of buffering; edgemq reads whole chunks and
splits packets itself (broker/mqtt/framing.py), so one small protocol object is enough:
chunks in (``read_some``, with back-pressure), the transport out (``drain`` for flow control).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

__all__ = ["TASK_NAME", "StreamConnection"]

TASK_NAME = "edgemq-mqtt-connection"
"""The name of every task that serves an MQTT connection (TCP, TLS and WebSocket)."""
_READ_LIMIT = 256 * 1024  # bytes received and not yet read before the socket is paused


class StreamConnection(asyncio.Protocol):
    """Bytes in through ``read_some``, out through ``transport`` (``drain`` waits while it is full)."""

    __slots__ = (
        "_buffered", "_chunks", "_drainers", "_ended", "_over_tls", "_reader", "_reading_paused",
        "_serve", "_spawn", "_stopped", "_writing_paused", "task", "transport",
    )  # fmt: skip

    def __init__(
        self,
        serve: Callable[[StreamConnection], Coroutine[Any, Any, None]],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]],
    ) -> None:
        self._serve = serve
        self._spawn = spawn
        self.transport: asyncio.WriteTransport | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._ended = False
        self._over_tls = False
        self._reader: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._stopped = False
        self._drainers: list[asyncio.Future[None]] = []
        self.task: asyncio.Task[None] | None = None
        """Serves the connection, from its first byte to its end."""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's are not subclasses
        self._over_tls = transport.get_extra_info("sslcontext") is not None
        self.task = self._spawn(self._serve(self), TASK_NAME)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _READ_LIMIT and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]
        self._wake_reader()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake_reader()
        # Keep the write side open, so what was received is still answered; TLS cannot (and
        # asyncio warns if asked), it closes once the reader has seen the end.
        return not self._over_tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake_reader()
        self._fail_drainers("connection lost")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for drainer in self._drainers:
            if not drainer.done():
                drainer.set_result(None)
        self._drainers.clear()

    # -- for the MQTT side --------------------------------------------------------------

    async def read_some(self) -> bytes:
        """What has arrived since the last call (waiting for something), or b"" at the end."""
        while not self._chunks:
            if self._ended:
                return b""
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self.read_nowait()

    def read_nowait(self) -> bytes:
        """What has arrived since the last read, b"" if nothing."""
        if not self._chunks:
            return b""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]
        return data

    def stop_reading(self) -> None:
        """End ``read_some`` (b"" once what arrived is read) and every ``drain``, waiting or
        later (ConnectionResetError: the connection is ending, nobody waits for a client that
        does not read); writes go on until the transport closes."""
        self._ended = self._stopped = True
        self._wake_reader()
        self._fail_drainers("connection closing")

    def _fail_drainers(self, reason: str) -> None:
        for drainer in self._drainers:
            if not drainer.done():
                drainer.set_exception(ConnectionResetError(reason))
        self._drainers.clear()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self.transport is None or self.transport.is_closing() or self._stopped:
            raise ConnectionResetError("connection closed")
        if self._writing_paused:
            drainer = asyncio.get_running_loop().create_future()
            self._drainers.append(drainer)
            await drainer

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)
