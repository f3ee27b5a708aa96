"""``FramedReader``: amqtt's reader interface served from whole, checked packets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from amqtt.adapters import ReaderAdapter

from broker.mqtt.framing import ProtocolViolation, split_packet

__all__ = ["ByteSource", "FramedReader"]

log = logging.getLogger("edgemq.mqtt")

_PACKETS_PER_TURN = 64  # packets of one connection handled before other tasks get a turn


class ByteSource(Protocol):
    """A connection's incoming bytes (broker/mqtt/stream_connection.py for TCP and TLS, a websocket
    source in core.py)."""

    transport: asyncio.WriteTransport | None
    """For edgemq's direct writes (TCP and TLS only)."""
    task: asyncio.Task[Any] | None
    """The task that serves the connection."""

    async def read_some(self) -> bytes:
        """What has arrived since the last read (waiting for something), b"" at the end."""

    def read_nowait(self) -> bytes:
        """What has arrived since the last read, b"" if nothing (or at the end)."""

    def stop_reading(self) -> None:
        """End the stream from outside: a pending or later ``read_some`` returns b""."""


class FramedReader(ReaderAdapter):
    """Serves amqtt's reads from whole, checked packets (broker/mqtt/framing.py).

    Bytes arrive in chunks from a ``ByteSource`` and are split into packets without further
    awaits. The event loop gets a turn every ``_PACKETS_PER_TURN`` packets, so a client that
    floods the broker cannot starve the others or the admin API. The reader routes each message
    before it reads the next packet, so a client that sends faster than the broker routes is
    held back through TCP. A malformed packet ends the stream: amqtt sees end of file and the
    connection closes as abnormal (will published).
    """

    def __init__(self, source: ByteSource, max_packet_size: Callable[[], int]) -> None:
        self._source = source
        self._max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._start = 0
        self._packet = b""
        self._offset = 0
        self._first = True
        self._ended = False
        self._until_yield = _PACKETS_PER_TURN
        self.v5 = False
        """The connection speaks MQTT 5 (set once its CONNECT is accepted)."""
        self.violation: ProtocolViolation | None = None
        """Why the stream ended, if a packet broke the protocol (an MQTT 5 client is told)."""
        self.transport = source.transport
        """The connection's transport, for edgemq's direct writes (TCP only)."""
        task = source.task
        if task is None:
            raise RuntimeError("a connection is read from the task that serves it")
        self.task: asyncio.Task[Any] = task
        """The task that serves the connection (and reads it)."""

    @property
    def source(self) -> ByteSource:
        """Where the bytes come from (a fault may drop or black-hole its connection)."""
        return self._source

    def interrupt(self) -> None:
        """End the stream from outside: a pending or later read ends as at end of file."""
        self._ended = True
        self._source.stop_reading()

    def next_buffered(self) -> bytes | None:
        """The next whole packet if it has already arrived, without waiting; None otherwise
        (``next_raw`` then waits for it, or reports the end of the stream)."""
        if self._ended:
            return None
        chunk = self._source.read_nowait()
        if chunk:
            del self._buffer[: self._start]
            self._start = 0
            self._buffer += chunk
        try:
            found = split_packet(
                self._buffer, self._start, self._max_packet_size(), first_packet=self._first, v5=self.v5
            )
        except ProtocolViolation:
            return None  # next_raw meets it again and ends the stream
        if found is None:
            return None
        packet, self._start = found
        self._first = False
        return packet

    async def next_raw(self) -> bytes | None:
        """The next whole packet, or None at the end of the stream (after the CONNECT)."""
        if self._ended:
            return None
        self._until_yield -= 1
        if not self._until_yield:
            self._until_yield = _PACKETS_PER_TURN
            await asyncio.sleep(0)
        try:
            limit, first, v5 = self._max_packet_size(), self._first, self.v5
            while (found := split_packet(self._buffer, self._start, limit, first_packet=first, v5=v5)) is None:
                del self._buffer[: self._start]
                self._start = 0
                chunk = await self._source.read_some()
                if not chunk:
                    self._ended = True
                    return None
                self._buffer += chunk
        except ProtocolViolation as exc:
            log.info("closing a connection: %s", exc)
            self.violation = exc
            self._ended = True
            return None
        except (ConnectionError, OSError):
            self._ended = True
            return None
        except Exception as exc:  # a transport's own errors (e.g. websocket closed) also end the stream
            log.debug("connection ended while reading: %r", exc)
            self._ended = True
            return None
        packet, self._start = found
        self._first = False
        return packet

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the current packet (end of file once the stream has ended)."""
        if self._offset >= len(self._packet):
            packet = await self.next_raw()
            if packet is None:
                return b""
            self._packet, self._offset = packet, 0
        end = len(self._packet) if n < 0 else self._offset + n
        data = self._packet[self._offset : end]
        self._offset += len(data)
        return data

    def feed_eof(self) -> None:
        """Nothing to do: end of file is reported by ``read``."""
