"""Admin port tests: HTTP/1.1 over a plain socket (for requests no client library sends) and log checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.helpers import WAIT

__all__ = [
    "BASIC_ADMIN",
    "RawAnswer",
    "exchange",
    "loud_records",
    "parse_answer",
    "read_answer",
    "read_one_answer",
    "watch_log",
]

BASIC_ADMIN = b"Authorization: Basic YWRtaW46cHVibGlj\r\n"  # admin:public


@dataclass(frozen=True)
class RawAnswer:
    """One HTTP response as read from the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def parse_answer(raw: bytes) -> RawAnswer:
    """The first response in ``raw`` (its body by Content-Length)."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {raw[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawAnswer(int(status_line.split()[1]), headers, rest[:length])


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    """Everything the server sends until it closes the connection, as one response."""
    async with asyncio.timeout(WAIT):
        return parse_answer(await reader.read())


async def read_one_answer(reader: asyncio.StreamReader) -> RawAnswer:
    """One response (its body by Content-Length), leaving the connection open."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(parse_answer(head).headers.get("content-length", "0"))
        return parse_answer(head + await reader.readexactly(length))


async def exchange(address: tuple[str, int], data: bytes, *, until_closed: bool = True) -> RawAnswer:
    """Send ``data`` on a new connection and read the answer: until the server closes the
    connection, or (``until_closed=False``) one response."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        return await (read_answer(reader) if until_closed else read_one_answer(reader))
    finally:
        writer.close()
        await writer.wait_closed()


def loud_records(records: list[logging.LogRecord]) -> list[str]:
    """Log lines above DEBUG from the admin API's side (uvicorn's access log aside, off in the edgemq command)."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in records
        if r.levelno > logging.DEBUG
        and r.name.startswith(("edgemq.api", "edgemq.http", "uvicorn"))
        and r.name != "uvicorn.access"
    ]


class _RecordWaiter(logging.Handler):
    def __init__(self, wanted: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__(logging.DEBUG)
        self._wanted = wanted
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self._wanted(record):
            self.seen.set()


@contextlib.contextmanager
def watch_log(logger: str, wanted: Callable[[logging.LogRecord], bool]) -> Iterator[asyncio.Event]:
    """An event set once ``logger`` (at DEBUG meanwhile) emits a record ``wanted`` accepts."""
    target = logging.getLogger(logger)
    waiter = _RecordWaiter(wanted)
    level = target.level
    target.setLevel(logging.DEBUG)
    target.addHandler(waiter)
    try:
        yield waiter.seen
    finally:
        target.removeHandler(waiter)
        target.setLevel(level)
