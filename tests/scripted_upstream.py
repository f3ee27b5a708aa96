"""A scripted MQTT 3.1.1 server on a real socket: the upstream of a bridge under test.

A scripted upstream is used where the test needs upstream behaviour that mosquitto cannot be made
to show on demand: a PUBREC and then a lost link, a resend with DUP after a reconnect, a link
dropped right after CONNACK, a CONNECT never answered. Each accepted connection runs the script
with its number (1 for the first); the connection is aborted when the script returns. Packets
are hand-built bytes, independent of the broker's own encoder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["PUBACK", "PUBCOMP", "PUBLISH", "PUBREC", "PUBREL", "Conn", "FakeUpstream", "Packet", "Script"]

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 3, 4, 5, 6, 7  # MQTT control packet types


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as read: its type, the flags of its first byte, and the rest."""

    kind: int
    flags: int
    body: bytes

    @property
    def qos(self) -> int:
        """The QoS of a PUBLISH."""
        return (self.flags >> 1) & 0x03

    @property
    def packet_id(self) -> bytes:
        """The packet id (two bytes) of a PUBLISH with QoS > 0, or of an acknowledgement."""
        if self.kind != PUBLISH:
            return self.body[:2]
        topic_end = 2 + int.from_bytes(self.body[:2], "big")
        return self.body[topic_end : topic_end + 2]

    @property
    def payload(self) -> bytes:
        """The application message of a PUBLISH with QoS > 0."""
        return self.body[2 + int.from_bytes(self.body[:2], "big") + 2 :]


class Conn:
    """One accepted connection, read and written by a script."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def packet(self, timeout: float | None = 5.0) -> Packet | None:
        """The next packet from the bridge; None once the connection is closed."""
        async with asyncio.timeout(timeout):
            try:
                first = (await self.reader.readexactly(1))[0]
                multiplier, length = 1, 0
                while True:
                    byte = (await self.reader.readexactly(1))[0]
                    length += (byte & 0x7F) * multiplier
                    multiplier *= 128
                    if not byte & 0x80:
                        break
                return Packet(first >> 4, first & 0x0F, await self.reader.readexactly(length))
            except (asyncio.IncompleteReadError, ConnectionError):
                return None

    async def until_closed(self) -> None:
        """Keep the connection open, reading and ignoring packets, until the bridge closes it."""
        while await self.packet(timeout=None) is not None:
            pass

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def connack(self, session_present: bool = False, code: int = 0) -> None:
        self.send(bytes((0x20, 2, int(session_present), code)))

    def ack(self, kind: int, packet_id: bytes) -> None:
        """Send PUBACK, PUBREC or PUBCOMP for ``packet_id`` (two bytes)."""
        self.send(bytes((kind << 4, 2)) + packet_id)


Script = Callable[[Conn, int], Awaitable[None]]
"""Plays the upstream's part on one connection, given the connection's number (from 1)."""


class FakeUpstream:
    """An upstream on a loopback port that runs ``script`` on every connection it accepts.

    An exception raised by a script (a failed assert on what the bridge sent) is raised again when
    the block ends; scripts still running then are cancelled."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.count = 0
        """Connections accepted so far."""
        self.server: asyncio.Server | None = None
        self.port = 0
        self._scripts: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        task = asyncio.current_task()
        if task is not None:
            self._scripts.add(task)
        try:
            await self.script(Conn(reader, writer), self.count)
        except Exception as exc:
            self._errors.append(exc)
        finally:
            writer.transport.abort()
            if task is not None:
                self._scripts.discard(task)

    async def __aenter__(self) -> FakeUpstream:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        scripts = list(self._scripts)
        for task in scripts:
            task.cancel()
        await asyncio.gather(*scripts, return_exceptions=True)
        if self._errors and exc[0] is None:
            raise self._errors[0]
