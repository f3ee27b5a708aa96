"""Hand-built MQTT 3.1.1 packets and a raw socket client, for tests below the client libraries."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    """A packet from its first byte and its variable header plus payload."""
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def connect(
    client_id: str,
    *,
    clean: bool = True,
    keepalive: int = 60,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: str | None = None,
    protocol: tuple[str, int] = ("MQTT", 4),
) -> bytes:
    """CONNECT; ``will`` is (topic, payload, qos, retain); ``protocol`` is (name, level), MQTT
    3.1 is ("MQIsdp", 3)."""
    flags = 0x02 if clean else 0
    payload = _string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _string(topic) + _string(message)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    name, level = protocol
    return packet(0x10, _string(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload)


def publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 1, retain: bool = False) -> bytes:
    """PUBLISH."""
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | int(retain), body)


def subscribe(packet_id: int, *filters: tuple[str, int]) -> bytes:
    """SUBSCRIBE with (filter, qos) pairs."""
    body = struct.pack("!H", packet_id) + b"".join(_string(f) + bytes([q]) for f, q in filters)
    return packet(0x82, body)


DISCONNECT = b"\xe0\x00"


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
        transport = self.writer.transport
        transport.abort()  # type: ignore[attr-defined]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
