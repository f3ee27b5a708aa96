"""amqtt's ``Broker`` with edgemq's connection lifecycle; routing is in router.py.

A connection's life (``serve_connection``): read and check the CONNECT within
``mqtt.connect_timeout``, refuse extra clients over ``mqtt.max_connections``, authenticate
before touching an existing session, take over a live client id (MQTT-3.1.4-2) under a
per-id lock, resume or create the session, then let its ``Connection`` read until the end;
publish the will once and only after an abnormal end, end clean sessions with their
connection. The broker keeps one ``Connection`` per connected client id; amqtt keeps its
sessions (``_sessions``: connected and offline) and its plugin manager. amqtt's broadcast loop
and session monitor do not run: routing is synchronous (router.py) and clean sessions end
with their connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import NOT_AUTHORIZED, SERVER_UNAVAILABLE
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.session import Session
from amqtt.utils import gen_client_id

from broker.amqtt_adapter.access import AccessChain
from broker.amqtt_adapter.connection import Connection
from broker.amqtt_adapter.fault_points import ConnectionFaultTargets
from broker.amqtt_adapter.framed_reader import FramedReader
from broker.amqtt_adapter.handler import EdgeHandler, write_refusal
from broker.amqtt_adapter.keyed_locks import KeyedLocks
from broker.amqtt_adapter.plugin_events import PluginEvents
from broker.amqtt_adapter.router import Router
from broker.amqtt_adapter.session import client_info, server_limits, v5_connack
from broker.amqtt_adapter.session_timers import SessionTimers
from broker.amqtt_adapter.shared_handover import SharedHandover
from broker.amqtt_adapter.stored_state import StoredState
from broker.clock import Clock
from broker.config.settings import LiveSettings
from broker.faults import Faults
from broker.mqtt.client_auth import ClientAuthenticator
from broker.mqtt.topics import is_system_topic, is_valid_topic_name
from broker.persistence.journal import Journal
from broker.persistence.store import StoreError
from broker.state import BrokerState

__all__ = ["LISTENER", "EdgeAmqttBroker"]

log = logging.getLogger("edgemq.mqtt")

LISTENER = "default"
_CONNECT_TIMEOUT = "edgemq: no CONNECT within mqtt.connect_timeout"
_amqtt_log = logging.getLogger("amqtt.broker")  # amqtt's broker logs there
_TAKEOVER_GRACE = 1.0
# What a resumed persistent session takes over from the new CONNECT.
_CONNECTION_FIELDS = (
    "will_flag", "will_topic", "will_message", "will_qos", "will_retain",
    "keep_alive", "username", "password", "remote_address", "remote_port", "ssl_object", "protocol_level",
    "http_access", "clean_session", "clean_start", "v5",
)  # fmt: skip
_MQTT_31 = 3
_DISCONNECT_REASONS = {"taken over by a new connection": 0x8E, "kicked": 0x98}  # else 0x8B, server shutting down


class _EndedBeforeConnect(MQTTError):
    """The connection ended before it sent its CONNECT: nothing to report."""


class EdgeAmqttBroker(StoredState, SessionTimers, SharedHandover, Router, ConnectionFaultTargets, Broker):
    """amqtt's broker with edgemq's connection lifecycle (here) and routing (``Router``)."""

    def __init__(
        self,
        config: dict[str, Any],
        state: BrokerState,
        settings: LiveSettings,
        clock: Clock,
        authenticator: ClientAuthenticator,
        journal: Journal | None = None,
        *,
        faults: Faults,
    ) -> None:
        super().__init__(config)
        self._state = state
        self._journal = journal
        self._faults = faults
        self._undiscarded: set[str] = set()  # discarded sessions the store still holds (a write failed)
        self._settings = settings
        self._clock = clock
        self._connections: dict[str, Connection] = {}
        self._client_locks = KeyedLocks()
        self._events = PluginEvents(self.plugins_manager, lambda: settings.current.auth.plugin_timeout)
        self._access = AccessChain(settings, authenticator, self.plugins_manager.plugins)
        self._init_routing(state)
        self._init_timers()

    async def start(self) -> None:
        """amqtt's start, with what the store holds (a broker started again without one starts empty)."""
        self._index.clear()
        self._retained.clear()
        await super().start()  # it empties amqtt's session table
        if self._journal is not None:
            await self._restore(self._journal.load())

    async def shutdown(self) -> None:
        """The plugins' events still running, amqtt's shutdown (its plugins' shutdown events and
        ``close``), then the HTTP auth pool."""
        self._cancel_timers()
        try:
            await self._events.drain()
            await super().shutdown()
        finally:
            await self._access.aclose()

    async def _broadcast_loop(self) -> None:
        """Not run: edgemq routes every message at once (router.py), nothing is ever queued."""

    async def _session_monitor(self) -> None:
        """Not run: clean sessions end with their connection and no session expires."""

    # -- connection lifecycle ------------------------------------------------------------

    async def serve_connection(self, reader: FramedReader, writer: WriterAdapter) -> None:
        """Serve one client connection to its end, in the calling task: amqtt's entry point
        (``external_connected``) without its per-listener semaphore (edgemq enforces
        ``mqtt.max_connections`` itself) and its per-connection INFO line."""
        try:
            handler, incoming = await self._read_connect(reader, writer)
        except _EndedBeforeConnect:
            return  # a port probe, or a connection asked to end (shutdown, restart)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            log.info("connection closed before it was accepted: %s", exc)
            return
        try:
            await self._serve_accepted(reader, writer, handler, incoming)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            _amqtt_log.warning("Error while handling client session: %s", exc)

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        if not isinstance(reader, FramedReader):
            raise TypeError("edgemq serves connections through FramedReader (MqttCore)")
        await self.serve_connection(reader, writer)

    async def _read_connect(self, reader: FramedReader, writer: WriterAdapter) -> tuple[EdgeHandler, Session]:
        """The CONNECT, checked: amqtt's ``_initialize_client_session`` without its session
        look-up, which edgemq does after authentication."""
        raw = reader.next_buffered()  # usually here by now: no deadline to arm
        if raw is None:
            raw = await self._wait_for_connect(reader, writer)
        handler, incoming = await EdgeHandler.from_connect(raw, writer, self.plugins_manager, self._faults)
        will_topic = incoming.will_topic or ""
        if incoming.will_flag and (not is_valid_topic_name(will_topic) or is_system_topic(will_topic)):
            await writer.close()
            raise MQTTError(f"invalid will topic {incoming.will_topic!r} (MQTT-3.1.3-10)")
        if not incoming.client_id:
            incoming.client_id = gen_client_id()
            if incoming.v5 is not None:
                incoming.v5.assigned_client_id = True  # its CONNACK says the name (3.2.2.3.7)
        return handler, incoming

    async def _wait_for_connect(self, reader: FramedReader, writer: WriterAdapter) -> bytes:
        """The CONNECT, within ``mqtt.connect_timeout``; MQTTError if it does not come."""
        task = reader.task
        timeout = self._settings.current.mqtt.connect_timeout
        deadline = self._clock.call_later(timeout, task.cancel, _CONNECT_TIMEOUT)
        try:  # asyncio.timeout, at a fifth of its cost
            raw = await reader.next_raw()
        except asyncio.CancelledError as exc:
            if exc.args == (_CONNECT_TIMEOUT,) and task.uncancel() == 0:
                await writer.close()
                raise MQTTError(f"no CONNECT within mqtt.connect_timeout ({timeout} s)") from None
            raise
        finally:
            deadline.cancel()
        if raw is None:
            raise _EndedBeforeConnect("connection ended before its CONNECT")
        return raw

    async def _refused(self, writer: WriterAdapter, incoming: Session) -> bool:
        """Refuse the CONNECT (CONNACK with a return code, then close) if the client may not connect."""
        client_id = incoming.client_id
        limit = self._settings.current.mqtt.max_connections
        if limit and len(self._connections) >= limit and client_id not in self._connections:
            log.warning("client refused: client_id=%s, max_connections (%d) reached", client_id, limit)
            code = SERVER_UNAVAILABLE
        elif not await self._access.authenticate(incoming):
            log.info("client refused: client_id=%s username=%s", client_id, incoming.username or "")
            code = NOT_AUTHORIZED
        else:
            return False
        await write_refusal(writer, incoming.protocol_level, code)
        return True

    async def _serve_accepted(
        self, reader: FramedReader, writer: WriterAdapter, handler: EdgeHandler, incoming: Session
    ) -> None:
        client_id = incoming.client_id
        if await self._refused(writer, incoming):
            return
        await self._client_locks.acquire(client_id)
        try:
            await self._take_over(client_id)
            self._connected_again(client_id)
            try:
                session = await self._resume_or_create(incoming)
            except StoreError:  # its session could not be written (or discarded): refused, as unavailable
                log.warning("client refused: client_id=%s, the store cannot be written", client_id)
                await write_refusal(writer, incoming.protocol_level, SERVER_UNAVAILABLE)
                return
            session.transitions.connect()
            handler.attach(session, reader, writer)
            self._sessions[client_id] = (session, handler)
            connection = Connection(
                handler, session, reader, writer, self._clock, self._state.record_dropped, self._faults, self._journal
            )
            self._connections[client_id] = connection
            if connection.v5 is not None:
                connection.limits5 = server_limits(self._settings.current.mqtt)
            handler.remember_in_flight()  # resend only what was in flight before this connection
            # in the order they were routed: what was in flight, then the offline queue, then
            # anything routed from now on (each is a task; none runs before the CONNACK is sent)
            handler.resend_in_flight()
            self._send_offline_queue(connection)
            # MQTT 3.1's CONNACK has no session-present flag: that byte is reserved (0)
            present = session.parent if session.protocol_level != _MQTT_31 else 0
            await handler.send_connack(present, v5_connack(session, self._settings.current.mqtt))
            self._state.record_connected(client_info(session))
            # silence allowed before the connection is closed (3.1.2.10)
            connection.keep_alive_allowance = session.keep_alive * self._settings.current.mqtt.keepalive_multiplier
        finally:
            self._client_locks.release(client_id)
        log.info(
            "client connected: client_id=%s username=%s address=%s:%s protocol=%d clean_session=%d keepalive=%d",
            client_id,
            session.username or "",
            session.remote_address,
            session.remote_port,
            session.protocol_level,
            session.clean_session,
            session.keep_alive,
        )
        try:
            self._events.fire(BrokerEvents.CLIENT_CONNECTED, client_id=client_id, client_session=session)
            await connection.serve(self)
            graceful = isinstance(handler.ended.result() if handler.ended.done() else None, DisconnectPacket)
            await self._end_connection(connection, graceful=graceful, reason=_end_reason(connection, graceful))
        finally:
            # the reading can end without a disconnect (protocol error, cancellation)
            await self._end_connection(connection, graceful=False, reason="protocol error")
            if self._connections.get(client_id) is connection:
                del self._connections[client_id]
            connection.mark_closed()

    async def _resume_or_create(self, incoming: Session) -> Session:
        """The session for an accepted CONNECT (MQTT-3.1.2-4/5/6); ``parent`` is session present."""
        client_id = incoming.client_id
        existing, _ = self._sessions.get(client_id, (None, None))
        if existing is not None and (incoming.clean_start or existing.clean_session):
            await self._delete_session(client_id)
            existing = None
        elif existing is None and client_id in self._undiscarded:
            await self._discard_persisted(client_id)  # its earlier discard did not reach the store
        if existing is None:
            incoming.parent = 0
            session = incoming
        else:
            for name in _CONNECTION_FIELDS:
                setattr(existing, name, getattr(incoming, name))
            existing.parent = 1
            session = existing
            self._session_resumed(client_id)
        await self._save_session(session)  # durable before its CONNACK
        return session

    async def _take_over(self, client_id: str) -> None:
        """End a live connection that holds ``client_id`` (MQTT-3.1.4-2) and wait until it has."""
        previous = self._connections.get(client_id)
        if previous is None:
            return
        log.info("client id %s connected again: closing its previous connection", client_id)
        await self._close(previous, publish_will=True, reason="taken over by a new connection")

    async def _close(self, connection: Connection, *, publish_will: bool, reason: str) -> None:
        """Close one connection from the server side and wait until it has ended."""
        connection.end_reason = reason
        connection.tell_closing(_DISCONNECT_REASONS.get(reason, 0x8B))
        if not publish_will:
            connection.session.will_flag = False
        await connection.handler.handle_connection_closed()
        try:
            await asyncio.wait_for(connection.wait_closed(), _TAKEOVER_GRACE)
        except TimeoutError:
            if connection.task is not None:
                connection.task.cancel()  # its handler is not listening yet
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.wait_closed(), _TAKEOVER_GRACE)

    async def _end_connection(self, connection: Connection, *, graceful: bool, reason: str) -> None:
        """Publish the will unless the client sent DISCONNECT, then end the connection (once)."""
        if connection.ended:
            return
        connection.ended = True
        session, client_id = connection.session, connection.client_id
        try:
            if not graceful:
                await self._will_at_end(session)
        finally:  # a failure to route must not leave the client half connected
            await self._stop_handler(connection.handler)
            session.transitions.disconnect()
            self._state.record_disconnected(client_id)
        log.info("client disconnected: client_id=%s reason=%s", client_id, reason)
        self._events.fire(BrokerEvents.CLIENT_DISCONNECTED, client_id=client_id, client_session=session)
        if session.clean_session and self._sessions.get(client_id, (None, None))[0] is session:
            await self._delete_session(client_id)
        else:
            self._expire_later(session)

    # -- admin actions -------------------------------------------------------------------

    async def reset(self) -> None:
        """Close every connection without wills, then forget sessions and retained messages."""
        self._cancel_timers()  # no delayed will or expiry of the sessions forgotten here
        await self.close_connections()
        for client_id in list(self._sessions):
            if client_id not in self._connections:  # one that connected meanwhile keeps its live session
                await self._delete_session(client_id)
        self._retained.clear()
        if self._journal is not None:  # sessions left the store one by one, live ones stay
            await self._journal.clear_retained()

    async def close_connections(self) -> None:
        """Close every client connection without publishing wills (a server-side shutdown)."""
        connections = list(self._connections.values())
        await asyncio.gather(*(self._close(c, publish_will=False, reason="server closing") for c in connections))

    async def kick(self, client_id: str, *, clean: bool) -> bool:
        """Close a client's connection (its will is published); ``clean`` also discards its session.

        False when there is nothing to do: no such connection (and, with ``clean``, no session).
        """
        connection = self._connections.get(client_id)
        if connection is not None:
            await self._close(connection, publish_will=True, reason="kicked")
        if clean and client_id in self._sessions and client_id not in self._connections:  # not one connected meanwhile
            await self._delete_session(client_id)
            return True
        if clean and client_id in self._undiscarded:
            await self._discard_persisted(client_id)
            return True
        return connection is not None

    # -- sessions ------------------------------------------------------------------------

    async def _del_all_subscriptions(self, session: Session) -> None:
        if self._index.drop_client(session.client_id):
            self._state.subscriptions_changed()

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        deleted = self._index.unsubscribe(session.client_id, a_filter)
        if deleted:
            self._state.subscriptions_changed()
        return int(deleted)

    async def _delete_session(self, client_id: str) -> None:
        """The session ends for good, in the store too (StoreError if that cannot be written: the
        store is asked again at the client id's next CONNECT or kick)."""
        await self._session_ends(client_id)
        handed = await self._hand_over_shared(client_id)
        queued = self._forget_queued(client_id) - handed
        persisted = self._persisted(client_id)
        await super()._delete_session(client_id)
        self._state.record_session_discarded(client_id, dropped=queued)
        if persisted or client_id in self._undiscarded:
            await self._discard_persisted(client_id)

    async def _cleanup_session(self, client_id: str) -> None:
        """amqtt's, at shutdown: the session ends in memory; what the store holds of it stays."""
        queued = 0 if self._persisted(client_id) else self._forget_queued(client_id)
        await super()._cleanup_session(client_id)
        self._state.record_session_discarded(client_id, dropped=queued)


def _end_reason(connection: Connection, graceful: bool) -> str:
    """Why a connection ended, for the disconnect log line."""
    if graceful:
        return "DISCONNECT"
    return connection.end_reason or "connection lost"
