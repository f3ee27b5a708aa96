"""amqtt's ``Broker`` with edgemq's connection lifecycle, routing and counting.

* Connection lifecycle (``_initialize_client_session``, ``_handle_client_session``,
  ``_handle_disconnect``): authenticate before touching an existing session, refuse extra
  clients over ``mqtt.max_connections``, take over a live client id (MQTT-3.1.4-2) under a
  per-id lock, resume or create the session, enforce keep-alive, publish the will once and
  only after an abnormal end, end clean sessions with their connection.
* Routing (``_accept``, ``_broadcast_message``): every accepted message, will
  and internal message is routed synchronously through the state's topic trie and counted
  there; delivered QoS = min(published, granted) (MQTT-3.8.4); queues are bounded by
  ``mqtt.max_mqueue_len`` and overflow is counted as dropped.
* Subscription table (``add_subscription``, ``_del_subscription``, ``_delete_session``,
  ``_cleanup_session``): mirrored into the state; a repeated SUBSCRIBE replaces the QoS; retained
  messages go only to the subscribing client, only for that SUBSCRIBE's filters (MQTT-3.3.1-6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker, RetainedApplicationMessage, Server
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import NOT_AUTHORIZED, SERVER_UNAVAILABLE, ConnackPacket
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import IncomingApplicationMessage, Session
from amqtt.utils import gen_client_id

from broker.amqtt_adapter.framed_reader import FramedReader
from broker.amqtt_adapter.handler import EdgeHandler
from broker.amqtt_adapter.outbox import Outbox, RoutedCopy
from broker.amqtt_adapter.session import queue_size
from broker.config.settings import LiveSettings
from broker.mqtt.acl import Action as AclAction
from broker.mqtt.acl import Client as AclClient
from broker.mqtt.acl import allowed as acl_allows
from broker.mqtt.client_auth import ClientAuthenticator, PasswordFileError
from broker.mqtt.topics import is_system_topic, is_valid_topic_name
from broker.state import BrokerState, ClientInfo, RoutedMessage

__all__ = ["LISTENER", "EdgeAclPlugin", "EdgeAmqttBroker", "EdgeAuthPlugin"]

log = logging.getLogger("edgemq.mqtt")

LISTENER = "default"
_CONNECT_TIMEOUT = "edgemq: no CONNECT within mqtt.connect_timeout"
_amqtt_log = logging.getLogger("amqtt.broker")  # amqtt's broker logs there
_SUBSCRIPTION_REFUSED = 0x80
_TAKEOVER_GRACE = 1.0
# What a resumed persistent session takes over from the new CONNECT.
_CONNECTION_FIELDS = (
    "will_flag", "will_topic", "will_message", "will_qos", "will_retain",
    "keep_alive", "username", "password", "remote_address", "remote_port", "ssl_object", "protocol_level",
)  # fmt: skip
_MQTT_311 = 4


class _EndedBeforeConnect(MQTTError):
    """The connection ended before it sent its CONNECT: nothing to report."""


class EdgeAuthPlugin(BaseAuthPlugin):
    """Asks edgemq's ClientAuthenticator; never marks a session anonymous (amqtt would drop it)."""

    @dataclass
    class Config:
        """Options, loaded by amqtt's plugin manager."""

        authenticator: Any = None

    def verdict_without_password(self, session: Session) -> bool | None:
        """The decision for a client without a user name, which needs no password list; None
        for the others (``authenticate``)."""
        authenticator: ClientAuthenticator = self.config.authenticator
        return authenticator.anonymous_verdict(session.username)

    async def authenticate(self, *, session: Session) -> bool:
        """Decide one CONNECT; a broken password list refuses the client and says why."""
        authenticator: ClientAuthenticator = self.config.authenticator
        try:
            return await authenticator.authenticate(session.username, session.password)
        except (OSError, PasswordFileError) as exc:
            log.error("cannot check the password of %s: %s", session.client_id, exc)
            return False


_ACL_ACTIONS: dict[Action, AclAction] = {
    Action.PUBLISH: "publish",
    Action.SUBSCRIBE: "subscribe",
    Action.RECEIVE: "receive",
}


class EdgeAclPlugin(BaseTopicPlugin):
    """Asks edgemq's ACL (broker/mqtt/acl.py) for SUBSCRIBE, PUBLISH and RECEIVE; loaded only with rules."""

    @dataclass
    class Config:
        """Options, loaded by amqtt's plugin manager."""

        acl: Any = None  # a callable returning the current broker.config.settings.Acl

    async def topic_filtering(self, *, session: Session, topic: str, action: Action) -> bool:
        """True to allow; a refused SUBSCRIBE gets 0x80 in SUBACK (3.9.3)."""
        kind = _ACL_ACTIONS[action]
        client = AclClient(session.client_id, session.username, session.remote_address)
        verdict = acl_allows(self.config.acl(), client, kind, topic)
        if not verdict:
            log.info("ACL: %s may not %s %s", session.client_id, kind, topic)
        return verdict


@dataclass(eq=False, slots=True)
class _Connection:
    """One network connection of a client, from accepted CONNECT to its end."""

    handler: BrokerProtocolHandler
    session: Session
    task: asyncio.Task[Any] | None
    ended: bool = False
    is_closed: bool = False
    _closed: asyncio.Future[None] | None = None  # made only when someone waits

    def mark_closed(self) -> None:
        """The connection is over: wake whoever waits in ``wait_closed``."""
        self.is_closed = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until ``mark_closed``."""
        if self.is_closed:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)  # one waiter's cancellation leaves it for the others


class _KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it.

    ``acquire`` then ``release`` in a ``finally`` (a plain pair: an async context manager
    generator costs more than the rest of the lock on every connect)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def release(self, key: str) -> None:
        self._locks[key][0].release()
        self._forget(key)

    def _forget(self, key: str) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


class EdgeAmqttBroker(Broker):
    """amqtt's broker with edgemq's lifecycle, routing and counting."""

    def __init__(self, config: dict[str, Any], state: BrokerState, settings: LiveSettings) -> None:
        super().__init__(config)
        self._state = state
        self._settings = settings
        self._connections: dict[str, _Connection] = {}
        self._connection_of: dict[BrokerProtocolHandler, _Connection] = {}
        self._client_locks = _KeyedLocks()
        self._deliveries: set[asyncio.Future[Any]] = set()
        self._pending: dict[BrokerProtocolHandler, _Backlog] = {}  # deliveries not finished, per connection
        self._evicted: set[asyncio.Future[Any]] = set()
        self._offline_bytes: dict[str, int] = {}  # payload bytes queued for each offline session
        # amqtt awaits every topic plugin per publish and per delivery; skip that without one
        self._topic_plugins = any(isinstance(p, BaseTopicPlugin) for p in self.plugins_manager.plugins)
        auth_plugins = [p for p in self.plugins_manager.plugins if isinstance(p, BaseAuthPlugin)]
        self._only_auth_plugin = auth_plugins[0] if len(auth_plugins) == 1 else None
        self._foreign_topic_plugins = any(
            isinstance(p, BaseTopicPlugin) and not isinstance(p, EdgeAclPlugin) for p in self.plugins_manager.plugins
        )

    # -- connection lifecycle ------------------------------------------------------------

    async def serve_connection(self, reader: FramedReader, writer: WriterAdapter) -> None:
        """Serve one client connection to its end, in the calling task: amqtt's entry point
        (``external_connected``) without its per-listener semaphore (edgemq enforces
        ``mqtt.max_connections`` itself) and its per-connection INFO line."""
        try:
            handler, incoming = await self._initialize_client_session(reader, writer, "", 0)
        except _EndedBeforeConnect:
            return  # a port probe, or a connection asked to end (shutdown, restart)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            log.info("connection closed before it was accepted: %s", exc)
            return
        try:
            await self._handle_client_session(reader, writer, incoming, handler, None, LISTENER)
        except (AMQTTError, MQTTError, NoDataError) as exc:
            _amqtt_log.warning("Error while handling client session: %s", exc)

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter) -> None:
        if not isinstance(reader, FramedReader):
            raise TypeError("edgemq serves connections through FramedReader (MqttCore)")
        await self.serve_connection(reader, writer)

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        # Read and check the CONNECT only. amqtt would also look up, delete or overwrite the
        # client's existing session here, before authentication; edgemq does that after it.
        assert isinstance(reader, FramedReader)  # made by MqttCore
        task = reader.task
        raw = reader.next_buffered()  # usually here by now: no deadline to arm
        if raw is None:
            raw = await self._wait_for_connect(reader, writer, task)
        handler, incoming = await EdgeHandler.from_connect(raw, writer, self.plugins_manager)
        handler.connection_task = task
        will_topic = incoming.will_topic or ""
        if incoming.will_flag and (not is_valid_topic_name(will_topic) or is_system_topic(will_topic)):
            await writer.close()
            raise MQTTError(f"invalid will topic {incoming.will_topic!r} (MQTT-3.1.3-10)")
        if not incoming.client_id:
            incoming.client_id = gen_client_id()
        return handler, incoming

    async def _wait_for_connect(self, reader: FramedReader, writer: WriterAdapter, task: asyncio.Task[Any]) -> bytes:
        """The CONNECT, within ``mqtt.connect_timeout``; MQTTError if it does not come."""
        timeout = self._settings.current.mqtt.connect_timeout
        deadline = asyncio.get_running_loop().call_later(timeout, task.cancel, _CONNECT_TIMEOUT)
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

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        incoming: Session,
        handler: BrokerProtocolHandler,
        server: Server | None,
        listener_name: str,
    ) -> None:
        assert isinstance(handler, EdgeHandler)  # made by _initialize_client_session
        client_id = incoming.client_id
        limit = self._settings.current.mqtt.max_connections
        if limit and len(self._connections) >= limit and client_id not in self._connections:
            log.warning("client refused: client_id=%s, max_connections (%d) reached", client_id, limit)
            await ConnackPacket.build(0, SERVER_UNAVAILABLE).to_stream(writer)
            await writer.close()
            return
        if not await self._authenticate(incoming, self.listeners_config[listener_name]):
            log.info("client refused: client_id=%s username=%s", client_id, incoming.username or "")
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            return
        await self._client_locks.acquire(client_id)
        try:
            await self._take_over(client_id)
            session = await self._resume_or_create(incoming)
            session.transitions.connect()
            handler.attach(session, reader, writer)
            self._sessions[client_id] = (session, handler)
            connection = _Connection(handler, session, handler.connection_task)
            handler.owner = self
            if isinstance(reader, FramedReader) and reader.transport is not None:
                handler.outbox = Outbox(reader.transport)
            self._connections[client_id] = connection
            self._connection_of[handler] = connection
            handler.remember_in_flight()  # resend only what was in flight before this connection
            self._send_offline_queue(session, handler)  # before anything routed from now on
            # MQTT 3.1's CONNACK has no session-present flag: that byte is reserved (0)
            await handler.send_connack(session.parent if session.protocol_level == _MQTT_311 else 0)
            self._state.record_connected(_client_info(session))
            # silence allowed before the connection is closed (3.1.2.10); the session keeps the
            # keep-alive the client sent
            handler.keep_alive_allowance = session.keep_alive * self._settings.current.mqtt.keepalive_multiplier
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
            await self.plugins_manager.fire_event(
                BrokerEvents.CLIENT_CONNECTED, client_id=client_id, client_session=session
            )
            handler.resend_in_flight()  # amqtt's start(), without its reader task
            # This task reads and handles everything the client sends (routing, SUBSCRIBE and
            # UNSUBSCRIBE, QoS 2 flows) until the connection ends: no reader task, and none of
            # the four waiter tasks of amqtt's _client_message_loop.
            await handler.serve()
            await self._handle_disconnect(session, handler, handler.ended)
        finally:
            # the message loop can end without a disconnect (protocol error, cancellation)
            await self._end_connection(connection, graceful=False, reason="protocol error")
            if self._connections.get(client_id) is connection:
                del self._connections[client_id]
            self._connection_of.pop(handler, None)
            connection.mark_closed()

    async def change_subscriptions(self, session: Session, handler: EdgeHandler, *, subscribe: bool) -> None:
        """Apply the SUBSCRIBE (or UNSUBSCRIBE) the client's reader just queued, in packet order."""
        change = asyncio.get_running_loop().create_future()
        if subscribe:
            change.set_result(await handler.get_next_pending_subscription())
            if await self._denied_with_disconnect(session, handler, [f for f, _ in change.result().topics]):
                return
            await self._handle_subscription(session, handler, change)
        else:
            change.set_result(await handler.get_next_pending_unsubscription())
            await self._handle_unsubscription(session, handler, change)

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        # amqtt runs every auth plugin in a task of its own; with edgemq's plugin alone, ask it
        # (and settle an anonymous client without awaiting anything).
        plugin = self._only_auth_plugin
        if isinstance(plugin, EdgeAuthPlugin):
            verdict = plugin.verdict_without_password(session)
            return verdict if verdict is not None else await plugin.authenticate(session=session)
        return bool(await super()._authenticate(session, listener))

    async def _resume_or_create(self, incoming: Session) -> Session:
        """The session for an accepted CONNECT (MQTT-3.1.2-4/5/6); ``parent`` is session present."""
        client_id = incoming.client_id
        existing, _ = self._sessions.get(client_id, (None, None))
        if existing is not None and (incoming.clean_session or existing.clean_session):
            await self._delete_session(client_id)
            existing = None
        if existing is None:
            incoming.parent = 0
            return incoming
        for name in _CONNECTION_FIELDS:
            setattr(existing, name, getattr(incoming, name))
        existing.parent = 1
        return existing

    async def _take_over(self, client_id: str) -> None:
        """End a live connection that holds ``client_id`` (MQTT-3.1.4-2) and wait until it has."""
        previous = self._connections.get(client_id)
        if previous is None:
            return
        log.info("client id %s connected again: closing its previous connection", client_id)
        await self._close(previous, publish_will=True, reason="taken over by a new connection")

    async def _close(self, connection: _Connection, *, publish_will: bool, reason: str) -> None:
        """Close one connection from the server side and wait until it has ended."""
        if isinstance(connection.handler, EdgeHandler):
            connection.handler.end_reason = reason
        if not publish_will:
            connection.session.will_flag = False
        await connection.handler.handle_connection_closed()
        try:
            await asyncio.wait_for(connection.wait_closed(), _TAKEOVER_GRACE)
        except TimeoutError:
            if connection.task is not None:
                connection.task.cancel()  # its handler is not listening yet (amqtt's start can wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.wait_closed(), _TAKEOVER_GRACE)

    async def _handle_disconnect(
        self, client_session: Session, handler: BrokerProtocolHandler, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        connection = self._connection_of.get(handler)
        if connection is not None:
            graceful = isinstance(disconnect_waiter.result(), DisconnectPacket)
            await self._end_connection(connection, graceful=graceful, reason=_end_reason(handler, graceful))

    async def _end_connection(self, connection: _Connection, *, graceful: bool, reason: str) -> None:
        """Publish the will unless the client sent DISCONNECT, then end the connection (once)."""
        if connection.ended:
            return
        connection.ended = True
        session, client_id = connection.session, connection.session.client_id
        try:
            if not graceful:
                await self._publish_will(session)
        finally:  # a failure to route must not leave the client half connected
            await self._stop_handler(connection.handler)
            session.transitions.disconnect()
            self._state.record_disconnected(client_id)
        log.info("client disconnected: client_id=%s reason=%s", client_id, reason)
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_DISCONNECTED, client_id=client_id, client_session=session
        )
        if session.clean_session and self._sessions.get(client_id, (None, None))[0] is session:
            await self._delete_session(client_id)

    async def _publish_will(self, session: Session) -> None:
        """Route (and retain, if asked) the will of a connection that ended without DISCONNECT."""
        if (
            not session.will_flag
            or not session.will_topic
            or session.will_message is None
            or (self._checks_topics and not await self._topic_allowed(session, session.will_topic, Action.PUBLISH))
        ):
            return
        will_qos = session.will_qos or 0
        await self._route(
            session, session.will_topic, bytes(session.will_message), will_qos, retain=bool(session.will_retain)
        )
        if session.will_retain:
            await self.retain_message(session, session.will_topic, session.will_message, will_qos)

    # -- routing -------------------------------------------------------------------------

    async def accept_publish(self, session: Session, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Route a PUBLISH the reader read whole (see ConnectionOwner)."""
        return await self._accept(session, IncomingApplicationMessage(None, topic, qos, payload, retain))

    async def _accept(self, client_session: Session, message: Any) -> bool:
        """Check, count and route one received PUBLISH; False closes the connection."""
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_RECEIVED, client_id=client_session.client_id, message=message
        )
        if message is None:
            return True
        topic = message.topic
        if not is_valid_topic_name(topic or ""):
            log.warning("client %s published to invalid topic %r: closing", client_session.client_id, topic)
            return False
        if is_system_topic(topic):  # acknowledged, never delivered: $SYS is the broker's
            log.debug("client %s published to %s: discarded", client_session.client_id, topic)
            self._state.record_routed(client_session.client_id, [], 0)
            return True
        if self._checks_topics and not await self._topic_allowed(client_session, topic, Action.PUBLISH):
            log.info("client %s may not publish to %s", client_session.client_id, topic)
            return not self._disconnects_on_deny(client_session)
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_BROADCAST, client_id=client_session.client_id, message=message
        )
        retain = bool(message.retain)
        await self._route(client_session, topic, bytes(message.data), message.qos or 0, retain=retain)
        if retain:
            await self.retain_message(client_session, topic, message.data, message.qos)
        return True

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        # Everything amqtt routes itself (internal messages) passes here; client publishes
        # and wills are routed by the methods above.
        if topic is not None and data is not None:
            await self._route(session, topic, bytes(data), force_qos or 0, counted=session is not None)

    async def _route(
        self,
        sender: Session | None,
        topic: str,
        data: bytes,
        qos: int,
        *,
        retain: bool = False,
        counted: bool = True,
        sender_id: str | None = None,
    ) -> None:
        """Route one message to every matching subscription and count it."""
        sender_id = sender.client_id if sender is not None else sender_id
        if counted and self._state.observes_messages:
            self._state.record_message(RoutedMessage(topic, data, qos, retain, sender_id))
        routed: list[str] = []
        discarded = 0
        limits = self._settings.current.mqtt
        limit, byte_limit = limits.max_mqueue_len, limits.max_mqueue_bytes
        message = RoutedCopy(topic, data)
        for client_id, granted_qos in self._state.subscribers(topic):
            target, handler = self._sessions.get(client_id, (None, None))
            if target is None or handler is None:
                continue
            if self._checks_topics and not await self._topic_allowed(target, topic, Action.RECEIVE):
                continue
            routed.append(client_id)
            delivered_qos = min(qos, granted_qos)
            connection = self._connection_of.get(handler)
            if connection is not None and not connection.ended and target.transitions.state == "connected":
                backlog = self._pending.get(handler, _NO_BACKLOG)
                count, size = backlog.count, backlog.size
                if isinstance(handler, EdgeHandler):
                    # nothing queued before this copy: write it directly if the client keeps up
                    if not count and handler.send_now(message, delivered_qos, limit, byte_limit):
                        continue
                    count, size = count + len(target.inflight_out), size + handler.direct_bytes
                if self._make_room(handler, count, size, len(data), delivered_qos):
                    self._deliver(handler, topic, data, delivered_qos)
                else:  # the client does not keep up: its queue is full
                    discarded += 1
            elif delivered_qos > 0 and not target.clean_session and self._queue_offline(target, len(data)):
                target.retained_messages.put_nowait(RetainedApplicationMessage(sender, topic, data, delivered_qos))
            else:
                discarded += 1
        if counted:
            self._state.record_routed(sender_id, routed, discarded)

    @property
    def _checks_topics(self) -> bool:
        """Whether topic plugins must be asked: edgemq's ACL only while it has rules (read live)."""
        acl = self._settings.current.acl
        return self._topic_plugins and (bool(acl.rules) or acl.no_match == "deny" or self._foreign_topic_plugins)

    def _disconnects_on_deny(self, session: Session) -> bool:
        """Whether a refused PUBLISH or SUBSCRIBE ends the connection (``auth.deny_action``)."""
        if self._settings.current.auth.deny_action != "disconnect":
            return False
        _, handler = self._sessions.get(session.client_id, (None, None))
        if isinstance(handler, EdgeHandler):
            handler.end_reason = "ACL denied (auth.deny_action = disconnect)"
        return True

    async def _denied_with_disconnect(self, session: Session, handler: EdgeHandler, filters: list[str]) -> bool:
        """With ``auth.deny_action = disconnect``: end the connection, without SUBACK, if the ACL
        refuses one of a SUBSCRIBE's filters."""
        if self._settings.current.auth.deny_action != "disconnect" or not self._checks_topics:
            return False
        for topic_filter in filters:
            if not await self._topic_allowed(session, topic_filter, Action.SUBSCRIBE):
                self._disconnects_on_deny(session)
                await handler.handle_disconnect(None)
                return True
        return False

    async def _topic_allowed(self, session: Session, topic: str, action: Action) -> bool:
        """The topic plugins' verdict (callers skip the await when there is no topic plugin)."""
        return bool(await self._topic_filtering(session, topic=topic, action=action))

    def _deliver(
        self,
        handler: BrokerProtocolHandler,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        *,
        retain: bool = False,
        counted: bool = True,
    ) -> None:
        """Send one copy in the background; a counted copy that fails counts as dropped."""
        task = asyncio.create_task(handler.mqtt_publish(topic, data, qos, retain=retain))
        self._deliveries.add(task)
        backlog = self._pending.get(handler)
        if backlog is None:
            backlog = self._pending[handler] = _Backlog()
        backlog.count += 1
        backlog.size += len(data)
        if qos == 0:
            backlog.qos0[task] = len(data)
        task.add_done_callback(partial(self._delivery_done, counted, handler, len(data)))

    def _make_room(self, handler: BrokerProtocolHandler, count: int, size: int, incoming: int, qos: int) -> bool:
        """Whether a copy of ``incoming`` bytes fits in a client's queue of ``count`` copies and
        ``size`` bytes (``mqtt.max_mqueue_len`` and ``max_mqueue_bytes``; the first copy always
        fits). A QoS 1/2 copy makes room by dropping the oldest QoS 0 copies not yet written."""
        limits = self._settings.current.mqtt
        while count >= limits.max_mqueue_len or (size and size + incoming > limits.max_mqueue_bytes):
            freed = self._evict_qos0(handler) if qos else None
            if freed is None:
                return False
            count, size = count - 1, size - freed
        return True

    def _evict_qos0(self, handler: BrokerProtocolHandler) -> int | None:
        """Make room for one copy in the client's queue: take its oldest QoS 0 copy out and return
        its size; None if there is none. A copy already written (its task done, not yet counted
        off) leaves without a drop; one not written yet is cancelled and counted as dropped."""
        backlog = self._pending.get(handler)
        while backlog is not None and backlog.qos0:
            task = next(iter(backlog.qos0))
            size = backlog.qos0.pop(task)
            if task.done():
                return size
            if isinstance(task, asyncio.Task) and task.cancelling():
                continue  # being cancelled already (evicted, or the broker stops)
            task.cancel()  # safe: amqtt writes a packet whole, under its write lock
            self._evicted.add(task)
            backlog.size -= size
            self._state.record_dropped(1)
            return size
        return None

    def _delivery_done(
        self, counted: bool, handler: BrokerProtocolHandler, size: int, task: asyncio.Future[Any]
    ) -> None:
        self._deliveries.discard(task)
        backlog = self._pending.get(handler)
        if task in self._evicted:  # counted (and its size taken off) when it was evicted
            self._evicted.discard(task)
            counted, size = False, 0
        if backlog is not None:
            backlog.qos0.pop(task, None)
            backlog.count -= 1
            backlog.size -= size
            if not backlog.count:
                del self._pending[handler]
        if not task.cancelled() and task.exception() is not None:
            log.debug("delivery failed: %r", task.exception())
            if counted:
                self._state.record_dropped(1)

    def _queue_offline(self, session: Session, size: int) -> bool:
        """Whether a copy of ``size`` bytes fits in an offline session's queue (counted in if so)."""
        limits = self._settings.current.mqtt
        queued = self._offline_bytes.get(session.client_id, 0)
        if queue_size(session, "retained_messages") >= limits.max_mqueue_len or (
            queued and queued + size > limits.max_mqueue_bytes
        ):
            return False
        self._offline_bytes[session.client_id] = queued + size
        return True

    def _send_offline_queue(self, session: Session, handler: BrokerProtocolHandler) -> None:
        """Deliver what was queued while the session was offline (retain flag 0, MQTT-3.3.1-9)."""
        self._offline_bytes.pop(session.client_id, None)
        if not queue_size(session, "retained_messages"):
            return
        queue = session.retained_messages
        while not queue.empty():
            message = queue.get_nowait()
            self._deliver(handler, message.topic, bytes(message.data), message.qos or 0)

    async def reset(self) -> None:
        """Close every connection without wills, then forget sessions and retained messages."""
        await self.close_connections()
        for client_id in list(self._sessions):
            await self._delete_session(client_id)
        self._retained_messages.clear()
        self.cancel_deliveries()

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
        if clean and client_id in self._sessions:
            await self._delete_session(client_id)
            return True
        return connection is not None

    async def publish(self, topic: str, payload: bytes, qos: int, *, retain: bool, client_id: str | None) -> None:
        """Route a message as if ``client_id`` (or nobody) had published it."""
        sender = self._sessions.get(client_id, (None, None))[0] if client_id else None
        await self._route(sender, topic, payload, qos, retain=retain, sender_id=client_id)
        if retain:
            await self.retain_message(sender, topic, payload, qos)

    def retained(self) -> list[tuple[str, int, int]]:
        """(topic, qos, payload size) of every retained message."""
        return [(t, m.qos or 0, len(m.data)) for t, m in self._retained_messages.items()]

    def delete_retained(self, topic: str) -> bool:
        """Forget the retained message of ``topic``; False if there is none."""
        return self._retained_messages.pop(topic, None) is not None

    def cancel_deliveries(self) -> None:
        """Cancel deliveries still in flight (at shutdown)."""
        for task in list(self._deliveries):
            task.cancel()

    # -- subscription table --------------------------------------------------------------

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        granted = int(await super().add_subscription(subscription, session))
        if granted == _SUBSCRIPTION_REFUSED:
            return granted
        topic_filter = subscription[0]
        # amqtt keeps the first QoS on a repeated SUBSCRIBE; MQTT-3.8.4-3 replaces it.
        entries = self._subscriptions[topic_filter]
        for index, (subscriber, _) in enumerate(entries):
            if subscriber.client_id == session.client_id:
                entries[index] = (session, granted)
        self._state.record_subscribed(session.client_id, topic_filter, granted)
        return granted

    async def _del_all_subscriptions(self, session: Session) -> None:
        # amqtt tries every filter of every client (6 ms per ended session with 10 000
        # subscriptions); the state knows the session's own filters.
        for topic_filter in self._state.filters_of(session.client_id):
            if self._del_subscription(topic_filter, session) and not self._subscriptions.get(topic_filter):
                self._subscriptions.pop(topic_filter, None)

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        deleted = int(super()._del_subscription(a_filter, session))
        if deleted:
            self._state.record_unsubscribed(session.client_id, a_filter)
        return deleted

    def _forget_queued(self, client_id: str) -> int:
        """Forget what a session about to be discarded holds; the copies lost with it (its offline
        queue and its unacknowledged messages)."""
        self._offline_bytes.pop(client_id, None)
        session = self._sessions.get(client_id, (None, None))[0]
        if session is None:
            return 0
        return queue_size(session, "retained_messages") + len(session.inflight_out)

    async def _delete_session(self, client_id: str) -> None:
        queued = self._forget_queued(client_id)
        await super()._delete_session(client_id)
        self._state.record_session_discarded(client_id, dropped=queued)

    async def _cleanup_session(self, client_id: str) -> None:
        queued = self._forget_queued(client_id)
        await super()._cleanup_session(client_id)
        self._state.record_session_discarded(client_id, dropped=queued)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt waits for every retained delivery (and its acks) here, stalling the client's
        # loop; deliver them in the background instead.
        topic_filter, granted_qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not self._checks_topics or await self._topic_allowed(session, topic, Action.RECEIVE):
                qos = min(granted_qos, retained.qos or 0)
                self._deliver(handler, topic, retained.data, qos, retain=True, counted=False)


@dataclass(slots=True)
class _Backlog:
    """The copies routed to one connection and not finished yet: how many, their payload bytes,
    and the size of each QoS 0 one, oldest first (a full queue drops those for QoS 1/2 ones)."""

    count: int = 0
    size: int = 0
    qos0: dict[asyncio.Future[Any], int] = field(default_factory=dict)


_NO_BACKLOG = _Backlog()  # read only: what a connection without unfinished copies has


def _end_reason(handler: BrokerProtocolHandler, graceful: bool) -> str:
    """Why a connection ended, for the disconnect log line."""
    if graceful:
        return "DISCONNECT"
    decided = handler.end_reason if isinstance(handler, EdgeHandler) else None
    return decided or "connection lost"


def _client_info(session: Session) -> ClientInfo:
    will = session.will_flag
    return ClientInfo(  # positional: a connect makes one
        session.client_id,
        session.username or "",
        session.keep_alive,
        session.protocol_level,
        bool(session.clean_session),
        str(session.remote_address or ""),
        int(session.remote_port or 0),
        datetime.now(UTC),
        session.will_topic if will else None,
        bytes(session.will_message) if will and session.will_message is not None else None,
    )
