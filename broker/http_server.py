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
    """A listening TCP socket on (host, port); port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    sock.setblocking(False)
    return sock


class AdminHttpServer:
    """Serves an ASGI app with uvicorn; no I/O until ``start``."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._main_loop: asyncio.Task[None] | None = None

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
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=2
        )
        config.load()
        server = _EmbeddedServer(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._socket, self._server = sock, server
        self._main_loop = asyncio.create_task(server.main_loop(), name="edgemq-http-main-loop")

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (bounded by uvicorn), close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._main_loop is not None:
            await self._main_loop
            self._main_loop = None
        await server.shutdown()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
