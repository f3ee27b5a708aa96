"""StreamConnection (broker/mqtt/stream_connection.py): reading, flow control and being stopped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.mqtt.stream_connection import StreamConnection
from broker.task_group import TaskGroup

pytestmark = pytest.mark.anyio


class _Transport(asyncio.Transport):
    """The least a StreamConnection needs from a transport."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closing


async def _unused(connection: StreamConnection) -> None:
    """Serves nothing: these tests drive the connection themselves."""


async def _connection() -> StreamConnection:
    connection = StreamConnection(_unused, TaskGroup().spawn)
    connection.connection_made(_Transport())
    assert connection.task is not None
    await connection.task
    return connection


async def test_stop_reading_ends_a_pending_read() -> None:
    """A read waiting for bytes returns end of stream once reading is stopped from elsewhere."""
    connection = await _connection()
    reading = asyncio.ensure_future(connection.read_some())
    await asyncio.sleep(0)  # one loop turn: the read starts and waits
    assert not reading.done()
    connection.stop_reading()
    assert await asyncio.wait_for(reading, 5) == b""


async def test_stop_reading_ends_a_drain_waiting_for_a_client_that_does_not_read() -> None:
    """A write waiting for a full socket to drain fails at once, so the connection can end."""
    connection = await _connection()
    connection.pause_writing()
    draining = asyncio.ensure_future(connection.drain())
    await asyncio.sleep(0)  # one loop turn: the drain starts and waits
    assert not draining.done()
    connection.stop_reading()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(draining, 5)


async def test_drain_after_stop_reading_fails_at_once() -> None:
    """Once the connection is ending, a write to a client that does not read does not wait."""
    connection = await _connection()
    connection.pause_writing()
    connection.stop_reading()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(connection.drain(), 5)


async def test_bytes_received_before_stop_are_still_read() -> None:
    """What arrived before reading was stopped is read, then the stream ends."""
    connection = await _connection()
    connection.data_received(b"\xc0\x00")
    connection.stop_reading()
    assert connection.read_nowait() == b"\xc0\x00"
    assert await connection.read_some() == b""
