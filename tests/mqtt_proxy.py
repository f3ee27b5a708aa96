"""A TCP proxy between an MQTT client and a broker that can cut the link at a chosen packet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from broker.mqtt.framing import split_packet

PacketCheck = Callable[[bytes], bool]
_ANY_SIZE = 268_435_455  # the largest remaining length MQTT can express (2.2.3)


def _split(buffer: bytearray) -> bytes | None:
    """Take the next whole MQTT packet off the front of ``buffer``, or None if it is not all there
    (broker/mqtt/framing.py splits; both directions carry only well-formed packets here)."""
    found = split_packet(buffer, 0, _ANY_SIZE, first_packet=False)
    if found is None:
        return None
    packet, end = found
    del buffer[:end]
    return packet


class MqttProxy:
    """Forwards every connection to ``upstream`` packet by packet.

    ``cut_before`` is asked about each packet the broker sends; the first packet it accepts is
    not forwarded and that connection is closed on both sides (a lost packet and a lost link).
    Later connections are forwarded whole. ``cut`` is set once that has happened.
    """

    def __init__(self, upstream: tuple[str, int], cut_before: PacketCheck) -> None:
        self._upstream = upstream
        self._cut_before: PacketCheck | None = cut_before
        self.cut = asyncio.Event()
        self.address: tuple[str, int] = ("", 0)
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MqttProxy]:
        """Listen on a free loopback port (``address``) until the block ends."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = server.sockets[0].getsockname()[:2]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.transport.abort()  # every link ends as a lost connection
            await asyncio.gather(*self._links, return_exceptions=True)
            await server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(client_writer)
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self._upstream)
            self._writers.add(broker_writer)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._pipe(client_reader, broker_writer, from_broker=False))
                    group.create_task(self._pipe(broker_reader, client_writer, from_broker=True))
            except* (ConnectionError, _Cut):
                pass
            finally:
                for writer in (broker_writer, client_writer):
                    writer.transport.abort()
                    self._writers.discard(writer)
        finally:
            self._links.discard(task)
            self._writers.discard(client_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_broker: bool) -> None:
        buffer = bytearray()
        while chunk := await reader.read(65536):
            buffer += chunk
            while (packet := _split(buffer)) is not None:
                if from_broker and self._cut_before is not None and self._cut_before(packet):
                    self._cut_before = None  # only the first one
                    self.cut.set()
                    raise _Cut
                writer.write(packet)
            await writer.drain()
        raise ConnectionResetError("end of stream")


class _Cut(Exception):
    """The proxy cut the link on purpose."""
