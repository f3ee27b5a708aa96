"""A raw socket client for tests below the client libraries, and hand-built (malformed) packets.

Well-formed packets come from broker/mqtt/encoding.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from broker.mqtt.framing import remaining_length


def packet(first_byte: int, body: bytes) -> bytes:
    """A packet from its first byte and its variable header plus payload, for the malformed packets
    that broker/mqtt/encoding.py does not build."""
    return bytes([first_byte]) + remaining_length(len(body)) + body


class RawClient:
    """A TCP connection that speaks bytes, for malformed input and abrupt disconnects."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, address: tuple[str, int]) -> AsyncIterator[RawClient]:
        """A connection to ``address``, closed on exit."""
        reader, writer = await asyncio.open_connection(*address)
        client = cls(reader, writer)
        try:
            yield client
        finally:
            await client.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_packet(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """(first byte, body) of the next packet."""
        async with asyncio.timeout(timeout):
            first = (await self.reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return first, await self.reader.readexactly(length)

    async def connack(self, packet_bytes: bytes) -> tuple[int, int]:
        """Send a CONNECT and return (session present, return code) of the CONNACK."""
        await self.send(packet_bytes)
        first, body = await self.read_packet()
        assert first == 0x20, f"expected CONNACK, got {first:#x}"
        return body[0], body[1]

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Whether the broker closes the connection (EOF or reset) within ``timeout``."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionResetError):
                while await self.reader.read(4096):
                    pass
        return True

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (an abrupt disconnect)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
