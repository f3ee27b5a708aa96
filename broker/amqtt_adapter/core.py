"""``MqttCore``: amqtt's broker behind the listeners edgemq binds itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from amqtt.adapters import WebSocketsWriter, WriterAdapter
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from broker.amqtt_adapter.edge_broker import LISTENER, EdgeAmqttBroker
from broker.amqtt_adapter.framed_reader import FramedReader
from broker.amqtt_adapter.plugin_loading import amqtt_plugins, loading_plugins
from broker.bridges.bridge_set import BridgeSet
from broker.clock import Clock, LoopClock
from broker.config.settings import LiveSettings
from broker.control import MqttUnavailable
from broker.faults import Faults
from broker.mqtt.client_auth import ClientAuthenticator
from broker.mqtt.listeners import ListenerSet
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.stream_connection import StreamConnection
from broker.persistence.journal import Journal
from broker.persistence.store import Store
from broker.state import BrokerState
from broker.task_group import TaskGroup

__all__ = ["MqttCore"]

log = logging.getLogger("edgemq.mqtt")


class WebSocketSource:
    """The binary messages of a websocket as a byte source (MQTT over websockets, 6.0)."""

    transport: asyncio.WriteTransport | None = None  # edgemq writes to websockets through amqtt

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self.task = asyncio.current_task()
        """The task serving the connection (websockets' handler task, which makes the source)."""

    async def read_some(self) -> bytes:
        """The next message, b"" once the websocket is closed."""
        try:
            message = await self._connection.recv()
        except ConnectionClosed:
            return b""
        return message.encode() if isinstance(message, str) else message

    def read_nowait(self) -> bytes:
        """Nothing without waiting: messages are read through ``read_some``."""
        return b""

    def stop_reading(self) -> None:
        """End reading at once (a connection ended by the broker: take-over, kick, keep-alive):
        the pending ``recv`` sees the connection closed."""
        self._connection.transport.abort()


class WebSocketWriter(WebSocketsWriter):
    """amqtt's websocket writer; a websocket closed under it (a peer gone without a close frame)
    is reported as ConnectionResetError, which amqtt takes for a closed connection (it logs
    anything else as a WARNING)."""

    async def drain(self) -> None:
        try:
            await super().drain()
        except ConnectionClosed as exc:
            raise ConnectionResetError(str(exc)) from None


class ConnectionWriter(WriterAdapter):
    """amqtt's writer interface over a StreamConnection (TCP or TLS)."""

    def __init__(self, connection: StreamConnection) -> None:
        self._connection = connection

    def write(self, data: bytes) -> None:
        transport = self._connection.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        await self._connection.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        transport = self._connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return (peer[0], peer[1]) if peer and len(peer) >= 2 else None

    def get_ssl_info(self) -> Any:
        transport = self._connection.transport
        return transport.get_extra_info("ssl_object") if transport is not None else None

    async def close(self) -> None:
        """Send what is buffered, then close (the peer sees end of file)."""
        transport = self._connection.transport
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()
            transport.close()


def _amqtt_config(settings: LiveSettings) -> dict[str, Any]:
    """amqtt's configuration: one external listener (edgemq owns the sockets) and the users'
    plugins (PluginError: one cannot be loaded); edgemq's own checks are not amqtt plugins
    (access.py asks them first)."""
    plugins = amqtt_plugins(settings.current.plugins)
    return {"listeners": {LISTENER: {"type": "external", "bind": "edgemq-listeners:0"}}, "plugins": plugins}


def _quiet_amqtt_loggers() -> None:
    """amqtt and its state machine library log every connect at INFO; keep them at WARNING."""
    for name in ("amqtt", "transitions"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


class MqttCore:
    """The MQTT side: amqtt's broker behind the listeners edgemq binds itself.

    ``restart`` closes the listeners and every connection and opens them again with the
    current settings; the amqtt broker, and with it retained messages and persistent
    sessions, lives on. With ``persistence.enable`` the store is opened (and read back)
    before the listeners open, and closed after the broker stopped.
    """

    def __init__(
        self,
        settings: LiveSettings,
        state: BrokerState,
        tasks: TaskGroup,
        clock: Clock | None = None,
        *,
        faults: Faults,
    ) -> None:
        self._settings = settings
        self._faults = faults
        self._tasks = tasks
        self._state = state
        self._clock = clock if clock is not None else LoopClock()
        self._authenticator = ClientAuthenticator(lambda: settings.current.auth)
        self._broker: EdgeAmqttBroker | None = None
        self._listeners: ListenerSet | None = None
        self._bound: dict[str, tuple[str, int]] = {}  # where the listeners on port 0 were last bound
        self._store: Store | None = None
        self._bridges: BridgeSet | None = None

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Bound (host, port) of each running listener, by name (tcp, ssl, ws)."""
        return dict(self._listeners.addresses) if self._listeners is not None else {}

    @property
    def is_listening(self) -> bool:
        """Whether every configured listener accepts connections."""
        return self._listeners is not None and self._listeners.is_serving

    async def start(self) -> None:
        """Check the password list, open the store, start amqtt, then open the listeners
        (StoreError: the store cannot be used; PluginError: a plugin cannot be loaded; nothing
        was started)."""
        self._authenticator.users()  # a broken password file stops the start, with its line
        _quiet_amqtt_loggers()
        persistence = self._settings.current.persistence
        if persistence.enable:
            self._store = Store.open(persistence.store_path, persistence.sync)
            self._state.attach_store(self._store.stats)
        try:
            journal = Journal(self._store) if self._store is not None else None
            with loading_plugins():
                config = _amqtt_config(self._settings)
                broker = EdgeAmqttBroker(
                    config, self._state, self._settings, self._clock, self._authenticator, journal, faults=self._faults
                )
            await broker.start()
        except BaseException:
            self._close_store()
            raise
        self._broker = broker
        try:
            await self._open_listeners()
        except BaseException:
            await broker.shutdown()
            self._broker = None
            self._close_store()
            raise
        self._start_bridges(broker, journal)

    def _start_bridges(self, broker: EdgeAmqttBroker, journal: Journal | None) -> None:
        """Make the configured bridges (their queues as the store holds them) and start their links."""
        configured, state = self._settings.current.bridges, self._state
        restored = broker.restored_forwards
        bridges = BridgeSet(
            configured.mqtt,
            self._publish_from,
            journal,
            restored,
            state.bridges_changed,
            configured.cache.disk_cache_size,
        )
        if bridges:
            broker.bridges = self._bridges = bridges
            state.attach_bridges(bridges.stats)
            bridges.start()

    async def _publish_from(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        bridge: str,
        *,
        properties: MessageProperties | None = None,
    ) -> None:
        """A message from bridge ``bridge``'s upstream, with its MQTT 5 ``properties`` (None: none)."""
        await self._running().publish(
            topic, payload, qos, retain=retain, client_id=None, origin=bridge, properties=properties
        )

    def _close_store(self) -> None:
        """Commit what was written and close the store (after the broker stopped)."""
        store, self._store = self._store, None
        if store is not None:
            self._state.attach_store(None)
            store.close()

    async def _open_listeners(self) -> None:
        """Listen as configured; a listener on port 0 takes the port it had before (OSError if
        that was taken meanwhile)."""
        configured = self._settings.current.listeners
        listeners = ListenerSet(configured, self._on_stream, self._on_websocket, self._tasks, self._bound)
        await listeners.start()
        self._listeners = listeners
        self._bound = dict(listeners.kept_ports)

    async def _close_listeners(self, timeout: float) -> None:
        listeners, self._listeners = self._listeners, None
        if listeners is None:
            return
        listeners.stop_accepting()
        if self._broker is not None:
            await self._broker.close_connections()
        await listeners.close(timeout)

    async def restart(self, timeout: float) -> None:
        """Close listeners and connections, then listen again with the current settings."""
        await self._close_listeners(timeout)
        await self._open_listeners()

    async def listen(self) -> None:
        """Open the listeners with the current settings (after a failed restart)."""
        if self._listeners is None:
            await self._open_listeners()

    async def _on_stream(self, connection: StreamConnection) -> None:
        broker = self._broker
        assert broker is not None
        framed = FramedReader(connection, self._max_packet_size)
        await broker.serve_connection(framed, ConnectionWriter(connection))

    async def _on_websocket(self, connection: ServerConnection) -> None:
        broker = self._broker
        assert broker is not None
        framed = FramedReader(WebSocketSource(connection), self._max_packet_size)
        await broker.serve_connection(framed, WebSocketWriter(connection))

    def _max_packet_size(self) -> int:
        return self._settings.current.mqtt.max_packet_size

    def _running(self) -> EdgeAmqttBroker:
        if self._broker is None:
            raise MqttUnavailable("the MQTT side is not running")
        return self._broker

    async def reset(self) -> None:
        """Disconnect every client (no wills) and drop all sessions and retained messages."""
        await self._running().reset()

    async def kick(self, client_id: str, *, clean: bool) -> bool:
        """Disconnect a client (its will is published); ``clean`` also discards its session."""
        return await self._running().kick(client_id, clean=clean)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        *,
        retain: bool,
        client_id: str | None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Publish as the broker, attributed to ``client_id`` if given, with MQTT 5 ``properties``."""
        await self._running().publish(topic, payload, qos, retain=retain, client_id=client_id, properties=properties)

    def drop_connection(self, client_id: str) -> bool:
        """Abort a client's connection as a network failure would (broker/faults' ConnectionFaults)."""
        return self._running().drop_connection(client_id)

    def black_hole(self, client_id: str, on_end: Callable[[], None]) -> Callable[[], None]:
        """Stop reading and writing a client's connection without closing it (ConnectionFaults)."""
        return self._running().black_hole(client_id, on_end)

    @property
    def bridges(self) -> BridgeSet | None:
        """The running bridges (None: none configured, or not started)."""
        return self._bridges

    def retained(self) -> list[tuple[str, int, int]]:
        """(topic, qos, payload size) of every retained message."""
        return self._running().retained()

    def retained_message(self, topic: str) -> tuple[int, bytes] | None:
        """(qos, payload) of one retained message, or None."""
        return self._running().retained_message(topic)

    def delete_retained(self, topic: str) -> bool:
        """Forget one retained message; False if there is none."""
        return self._running().delete_retained(topic)

    async def stop(self, timeout: float) -> None:
        """Stop the bridges, close listeners and connections, then stop amqtt, each within
        ``timeout`` seconds."""
        bridges, self._bridges = self._bridges, None
        if bridges is not None:
            self._state.attach_bridges(None)
            try:
                await asyncio.wait_for(bridges.stop(), timeout)
            except TimeoutError:
                log.warning("the bridges did not stop within %ss", timeout)
        await self._close_listeners(timeout)
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                await asyncio.wait_for(broker.flush_discards(), timeout)
                await asyncio.wait_for(broker.shutdown(), timeout)
            except TimeoutError:
                log.warning("amqtt did not shut down within %ss", timeout)
        self._close_store()
