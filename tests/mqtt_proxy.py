"""A TCP proxy between an MQTT client and a broker that can cut the link at a chosen packet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from broker.mqtt.framing import split_packet
from tests.link_proxy import Link, TcpRelay

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


class MqttProxy(TcpRelay):
    """Forwards every connection to ``upstream`` packet by packet.

    ``cut_before`` is asked about each packet the broker sends; the first packet it accepts is
    not forwarded and that connection is closed on both sides (a lost packet and a lost link).
    Later connections are forwarded whole. ``cut`` is set once that has happened.
    """

    def __init__(self, upstream: tuple[str, int], cut_before: PacketCheck) -> None:
        super().__init__(upstream)
        self._cut_before: PacketCheck | None = cut_before
        self.cut = asyncio.Event()

    async def _relay(self, link: Link, client_reader: asyncio.StreamReader) -> None:
        broker_reader, link.upstream = await asyncio.open_connection(*self.upstream)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(client_reader, link.upstream, from_broker=False))
                group.create_task(self._pipe(broker_reader, link.client, from_broker=True))
        except* (ConnectionError, _Cut):
            pass  # the relay closes both sides

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
