"""The MQTT listeners edgemq binds itself (TCP, TLS, WebSocket), so it knows every bound port.

Each accepted connection is handed to a callback and tracked, so that closing the listeners
can also end every connection within a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from broker.config.settings import Listeners, SslListener
from broker.mqtt.stream_connection import TASK_NAME, StreamConnection
from broker.task_group import TaskGroup

__all__ = ["ListenerSet", "StreamHandler", "WebSocketHandler"]

log = logging.getLogger("edgemq.mqtt")

StreamHandler = Callable[[StreamConnection], Awaitable[None]]
WebSocketHandler = Callable[[ServerConnection], Awaitable[None]]


_SUBPROTOCOLS = ("mqtt", "mqttv3.1")  # MQTT 3.1.1 (6.0) and the name MQTT 3.1 clients offer


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """``mqtt``, else ``mqttv3.1``, else none if the client offered none (as mosquitto); a
    client that offers only other subprotocols is refused (400)."""
    for name in _SUBPROTOCOLS:
        if name in offered:
            return Subprotocol(name)
    if offered:
        raise NegotiationError(f"no MQTT subprotocol offered ({', '.join(offered)})")
    return None


class _WebSocketLog(logging.LoggerAdapter[logging.Logger]):
    """websockets' log of the listener, with a failed opening handshake (the client's fault:
    garbage, a dropped connection, a wrong subprotocol) as one INFO line without a traceback."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg == "opening handshake failed":
            kwargs.pop("exc_info", None)
            level, msg, args = logging.INFO, "websocket handshake failed: %s", (_reasons(sys.exc_info()[1]),)
        super().log(level, msg, *args, **kwargs)


def _reasons(exc: BaseException | None) -> str:
    """An exception and its causes, on one line."""
    found = []
    while exc is not None:
        found.append(str(exc) or type(exc).__name__)
        exc = exc.__cause__
    return ": ".join(found)


def tls_context(listener: SslListener) -> ssl.SSLContext:
    """The server TLS context of an ``ssl`` listener."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=listener.cacertfile)
    context.load_cert_chain(listener.certfile, listener.keyfile, password=listener.keypass)
    if listener.fail_if_no_peer_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif listener.verify_peer:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class _Tracking:
    """While a task serves a connection it is in ``connections`` with the function that asks the
    connection to end (``close`` calls it, then waits); a client fault ends the connection only,
    at DEBUG (never the loop's error log)."""

    __slots__ = ("_connections", "_end", "_task")

    def __init__(
        self,
        connections: dict[asyncio.Task[Any], Callable[[], None]],
        task: asyncio.Task[Any] | None,
        end: Callable[[], None],
    ) -> None:
        assert task is not None
        self._connections, self._task, self._end = connections, task, end

    def __enter__(self) -> None:
        self._connections[self._task] = self._end

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        self._connections.pop(self._task, None)
        if isinstance(exc, Exception):
            log.debug("connection ended with %r", exc)
            return True
        return False


class ListenerSet:
    """The configured listeners; ``start`` binds all or none, ``close`` ends every connection."""

    def __init__(
        self,
        config: Listeners,
        on_stream: StreamHandler,
        on_websocket: WebSocketHandler,
        tasks: TaskGroup,
        ports: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        self._config = config
        self._ports = ports or {}  # kept_ports of the listeners before
        self._tasks = tasks
        self._on_stream = on_stream
        self._on_websocket = on_websocket
        self._servers: dict[str, asyncio.Server | WsServer] = {}
        self._closing: list[asyncio.Server | WsServer] = []
        self._connections: dict[asyncio.Task[Any], Callable[[], None]] = {}
        self.addresses: dict[str, tuple[str, int]] = {}
        self.kept_ports: dict[str, tuple[str, int]] = {}
        """Where the listeners configured on port 0 were bound: they keep it (pass it as ``ports``)."""

    @property
    def is_serving(self) -> bool:
        """Whether every configured listener accepts connections."""
        return bool(self._servers) and all(
            server.is_serving() for server in self._servers.values() if isinstance(server, asyncio.Server)
        )

    async def start(self) -> None:
        """Bind every configured listener; if one fails, close those already bound and raise."""
        try:
            if (tcp := self._config.tcp) is not None:
                await self._bind("tcp", tcp.address, lambda h, p: self._start_stream("tcp", h, p, None, tcp.backlog))
            if (tls := self._config.ssl) is not None:
                context = tls_context(tls)
                await self._bind("ssl", tls.address, lambda h, p: self._start_stream("ssl", h, p, context, tls.backlog))
            if (ws := self._config.ws) is not None:
                await self._bind("ws", ws.address, lambda h, p: self._start_websocket(h, p, ws.path, ws.backlog))
        except BaseException:
            await self.close(timeout=1.0)
            raise

    async def _bind(self, name: str, address: tuple[str, int], start: Callable[[str, int], Awaitable[None]]) -> None:
        """Start one listener at ``address``. Port 0 (any) is the port it had before, if it had
        one, so that a restart, or a stop and a start, keeps the port clients know; if that was
        taken meanwhile the start fails (OSError naming it), for the clients' reconnects would
        reach whatever listens there now."""
        host, port = address
        before = self._ports.get(name) if port == 0 else None
        if before is None:
            await start(host, port)
        else:
            try:
                await start(host, before[1])
            except OSError as exc:
                cause = exc.strerror or exc
                reason = f"listener {name}: port {before[1]}, which it keeps across restarts, is taken: {cause}"
                raise OSError(exc.errno, reason) if exc.errno is not None else OSError(reason) from exc
        if port == 0:
            self.kept_ports[name] = self.addresses[name]

    async def _start_stream(
        self, name: str, host: str, port: int, context: ssl.SSLContext | None, backlog: int
    ) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: StreamConnection(self._track_stream, self._tasks.spawn), host, port, ssl=context, backlog=backlog
        )
        self._servers[name] = server
        self.addresses[name] = server.sockets[0].getsockname()[:2]

    async def _start_websocket(self, host: str, port: int, path: str, backlog: int) -> None:
        def only_path(connection: ServerConnection, request: Request) -> Response | None:
            if request.path.split("?", 1)[0] == path:
                return None
            return connection.respond(HTTPStatus.NOT_FOUND, f"MQTT over WebSocket is served at {path}\n")

        server = await serve(
            self._track_websocket,
            host,
            port,
            select_subprotocol=select_subprotocol,
            process_request=only_path,
            logger=_WebSocketLog(logging.getLogger("edgemq.websocket")),
            backlog=backlog,
        )
        self._servers["ws"] = server
        sockets = list(server.sockets)
        self.addresses["ws"] = sockets[0].getsockname()[:2]

    async def _track_stream(self, connection: StreamConnection) -> None:
        try:
            with _Tracking(self._connections, connection.task, connection.stop_reading):
                await self._on_stream(connection)
        finally:
            if connection.transport is not None:
                connection.transport.close()  # also when the connection is cancelled at shutdown

    async def _track_websocket(self, connection: ServerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.adopt(task, TASK_NAME)  # websockets' handler task
        with _Tracking(self._connections, task, connection.transport.abort):
            await self._on_websocket(connection)

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections go on."""
        self._closing.extend(self._servers.values())
        self._servers = {}
        self.addresses = {}
        for server in self._closing:
            server.close()

    async def close(self, timeout: float) -> None:
        """Stop accepting, ask every connection to end (those still waiting for their CONNECT
        too), and cancel those still open after ``timeout`` seconds."""
        self.stop_accepting()
        servers, self._closing = self._closing, []
        for end in list(self._connections.values()):
            end()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for server in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
