"""TCP proxies between a client and a broker that tests use to break the network link.

``TcpRelay`` is the skeleton every proxy here shares: a loopback listener, one task per accepted
connection, and no link left open when the proxy stops. ``LinkProxy`` forwards bytes and can cut
its links with RST, black-hole them, or refuse new ones; tests/mqtt_proxy.py cuts at a packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from collections.abc import AsyncIterator
from typing import Self

from tests.helpers import WAIT

_CHUNK = 65536


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """One accepted connection and, once the proxy opened it, its connection to the upstream."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.blackholed = False  # forwards nothing more, in either direction
        self.closed = False

    def abort(self, *, with_reset: bool = False) -> None:
        """Close both sides at once; with RST when ``with_reset``."""
        self.closed = True
        for writer in (self.client, self.upstream):
            if writer is not None:
                reset(writer) if with_reset else writer.transport.abort()


class TcpRelay:
    """Accepts connections on a free loopback port and hands each to ``_relay``, which subclasses
    write; ``connections`` counts the accepted ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.address: tuple[str, int] = ("", 0)
        self.connections = 0
        self._accepted = asyncio.Event()  # set and replaced at each accepted connection
        self._links: dict[Link, asyncio.Task[None]] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Listen on a free loopback port (``address``) until the block ends, then close every link."""
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = server.sockets[0].getsockname()[:2]
        try:
            yield self
        finally:
            server.close()
            for link in list(self._links):
                link.abort()
            await asyncio.gather(*self._links.values(), return_exceptions=True)
            await server.wait_closed()

    async def wait_connections(self, count: int, timeout: float = WAIT) -> None:
        """Wait until ``count`` connections were accepted in all."""
        try:
            async with asyncio.timeout(timeout):
                while self.connections < count:
                    await self._accepted.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.connections} of {count} connections accepted within {timeout}s") from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        link = Link(writer)
        self._links[link] = task
        self.connections += 1
        self._accepted.set()
        self._accepted = asyncio.Event()
        try:
            await self._relay(link, reader)
        finally:
            link.abort()
            del self._links[link]

    async def _relay(self, link: Link, client: asyncio.StreamReader) -> None:
        raise NotImplementedError


class _Mode(enum.Enum):
    PASS = "pass"
    BLACKHOLE = "blackhole"
    REFUSE = "refuse"


class LinkProxy(TcpRelay):
    """Forwards bytes both ways between each accepted connection and ``upstream``, and breaks links
    on demand: ``cut()``, ``blackhole()``, ``refuse()``; ``restore()`` lets new connections pass."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(upstream)
        self._mode = _Mode.PASS

    def cut(self) -> None:
        """Close every current link with RST on both sides; new connections still pass."""
        for link in list(self._links):
            link.abort(with_reset=True)

    def blackhole(self) -> None:
        """Current and new links forward nothing more, silently: their sockets stay open and what
        arrives is read and dropped; new connections are accepted but never reach the upstream."""
        self._mode = _Mode.BLACKHOLE
        for link in self._links:
            link.blackholed = True

    def refuse(self) -> None:
        """New connections are closed with RST at once, as by an upstream that is down or unreachable;
        current links go on."""
        self._mode = _Mode.REFUSE

    def restore(self) -> None:
        """New connections pass again; links black-holed before stay so."""
        self._mode = _Mode.PASS

    async def _relay(self, link: Link, client: asyncio.StreamReader) -> None:
        if self._mode is _Mode.REFUSE:
            link.abort(with_reset=True)
            return
        upstream: asyncio.StreamReader | None = None
        if self._mode is _Mode.BLACKHOLE:
            link.blackholed = True
        else:
            try:
                upstream, link.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                link.abort(with_reset=True)  # the upstream refused: so does the proxy
                return
            if link.closed:  # cut while connecting
                return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._pipe(link, client, link.upstream))
            if upstream is not None:
                group.create_task(self._pipe(link, upstream, link.client))

    async def _pipe(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None) -> None:
        """Copy ``reader`` to ``writer`` until end of stream, passing a FIN or a reset on; a
        black-holed link reads and drops and passes nothing on."""
        try:
            while chunk := await reader.read(_CHUNK):
                if writer is not None and not link.blackholed:
                    if writer.transport.is_closing():  # ended from the other side (uvloop raises on a write)
                        return
                    writer.write(chunk)
                    await writer.drain()
        except ConnectionError:
            if not link.blackholed:
                link.abort(with_reset=True)
            return
        if writer is not None and not link.blackholed:
            writer.close()
