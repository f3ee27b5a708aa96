"""The admin API's HTTP server: uvicorn on a socket edgemq binds, in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["AdminHttpServer"]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: signals belong to the CLI."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
    """Serves an ASGI app with uvicorn; no I/O until ``start``."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        if self._socket is None:
            raise RuntimeError("the admin HTTP server is not running")
        host, port = self._socket.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        """Bind, start uvicorn and return once it accepts connections."""
        sock = bind_socket(self._host, self._port)
        config = uvicorn.Config(self._app, lifespan="off", log_config=None, access_log=False)
        config.load()
        server = _EmbeddedServer(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._socket, self._server = sock, server

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, let open requests finish within ``timeout``, close the socket.

        uvicorn's own ``shutdown`` always sleeps 100 ms; this returns as soon as the last
        connection has closed.
        """
        server, self._server = self._server, None
        if server is None:
            return
        for listener in server.servers:
            listener.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(timeout):
                while state.connections or state.tasks:  # noqa: ASYNC110 - uvicorn has no "idle" event
                    await asyncio.sleep(0.005)
        except TimeoutError:
            for task in list(state.tasks):
                task.cancel()
        for listener in server.servers:
            await listener.wait_closed()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
