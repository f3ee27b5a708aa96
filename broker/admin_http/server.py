"""The admin API's HTTP server: uvicorn's HTTP/1.1 protocol on a socket edgemq binds, in the
caller's event loop, each connection within the limits of ``http_server`` (broker/admin_http/protocol.py)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState

from broker.admin_http.protocol import ConnectionGate, GuardedHttpProtocol
from broker.config.settings import LiveSettings

__all__ = ["AdminHttpServer"]

_ABORT_GRACE = 0.5
"""Seconds handlers of aborted connections get to see the client gone before they are cancelled."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free port.

    The protocol is given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is
    IPPROTO_TCP, and without it every keep-alive response waits 40 ms for a delayed ACK.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class AdminHttpServer:
    """Serves an ASGI app over HTTP/1.1; no I/O until ``start``.

    The connection limits are read from ``settings.current.http_server`` when a connection is
    accepted.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, settings: LiveSettings) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._settings = settings
        self._socket: socket.socket | None = None
        self._listener: asyncio.Server | None = None
        self._state = ServerState()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._socket is None:
            raise RuntimeError("the admin HTTP server is not running")
        host, port = self._socket.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        """Bind and return once connections are accepted."""
        config = uvicorn.Config(self._app, lifespan="off", log_config=None, access_log=False, http="h11", ws="none")
        config.load()
        gate = ConnectionGate()

        def new_connection() -> GuardedHttpProtocol:
            return GuardedHttpProtocol(config, self._state, self._settings.current.http_server, gate)

        sock = bind_socket(self._host, self._port)
        try:
            self._listener = await asyncio.get_running_loop().create_server(new_connection, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._socket = sock

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close connections that are not being answered, let answers finish
        within ``timeout``, then end what is left (its handlers see the client gone first)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.close()
        state = self._state
        for connection in list(state.connections):
            connection.shutdown()
        if not await self._idle(timeout):
            for connection in list(state.connections):
                connection.transport.abort()
            await self._idle(_ABORT_GRACE)
            for task in list(state.tasks):
                task.cancel()
        await listener.wait_closed()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _idle(self, timeout: float) -> bool:
        """Whether every connection and request ended within ``timeout``."""
        state = self._state
        try:
            async with asyncio.timeout(timeout):
                while state.connections or state.tasks:  # noqa: ASYNC110 - uvicorn has no "idle" event
                    await asyncio.sleep(0.005)
        except TimeoutError:
            return False
        return True
