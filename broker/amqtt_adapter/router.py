"""Routing: accepted messages, wills and internal messages to their subscribers; SUBSCRIBE and
UNSUBSCRIBE; retained messages; the queues of offline sessions.

Everything reads one subscription index (broker/mqtt/subscriptions.py) and one retained store
(broker/mqtt/retained.py), both edgemq's: amqtt's ``_subscriptions`` and ``_retained_messages``
stay empty, and its ``subscriptions`` and ``retained_messages`` properties (read by amqtt's
``$SYS`` plugin and plugin contexts) are views made from them on request. Delivered QoS is
min(published, granted) (MQTT-3.8.4); queues are bounded by ``mqtt.max_mqueue_len`` and
``max_mqueue_bytes`` and overflow is counted as dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from amqtt.broker import RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.events import BrokerEvents
from amqtt.plugins.manager import PluginManager
from amqtt.session import IncomingApplicationMessage, Session

from broker.amqtt_adapter.access import AccessChain
from broker.amqtt_adapter.connection import Connection
from broker.amqtt_adapter.fault_points import deliver_faulted
from broker.amqtt_adapter.outbox import RoutedCopy
from broker.amqtt_adapter.plugin_events import PluginEvents
from broker.amqtt_adapter.retained_routing import RetainedRouting
from broker.amqtt_adapter.router5 import Matched, Mqtt5Routing, kept_retain
from broker.amqtt_adapter.session import QueuedMessage, queue_size
from broker.bridges.bridge_set import BridgeSet
from broker.config.settings import LiveSettings
from broker.faults import Faults
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.retained import RetainedStore
from broker.mqtt.shared import SHARE_PREFIX, split_shared
from broker.mqtt.subscriptions import SubscriptionIndex
from broker.mqtt.topics import is_system_topic, is_valid_topic_name
from broker.persistence.journal import Journal
from broker.state import BrokerState, RoutedMessage

__all__ = ["Router"]

log = logging.getLogger("edgemq.mqtt")

_REFUSED = 0x80  # a SUBACK return code (3.9.3)


def _valid_filter(topic_filter: str) -> bool:
    """``#`` only as the whole last level, ``+`` only as a whole level (MQTT-4.7.1-2/3); a shared
    subscription's share name and filter well formed (MQTT-4.8.2-1/2)."""
    try:
        shared = split_shared(topic_filter)
    except ValueError:
        return False
    levels = (shared[1] if shared is not None else topic_filter).split("/")
    last = len(levels) - 1
    return all(
        ("#" not in level or (level == "#" and index == last)) and ("+" not in level or level == "+")
        for index, level in enumerate(levels)
    )


class Router(RetainedRouting, Mqtt5Routing):
    """The routing half of ``EdgeAmqttBroker`` (a base class of it; amqtt's ``Broker`` is the other)."""

    _settings: LiveSettings
    _state: BrokerState
    _connections: dict[str, Connection]
    _sessions: dict[str, tuple[Session, Any]]  # amqtt's: every session, connected or offline
    _journal: Journal | None  # what persists (None: nothing)
    _faults: Faults  # consulted only while ``active``
    bridges: BridgeSet | None = None
    """Offered every routed message (set by MqttCore once the bridges are made)."""
    plugins_manager: PluginManager[Any]
    _access: AccessChain  # the ACL, http_auth and topic plugins
    _events: PluginEvents  # the plugins' events: fired only when some plugin listens

    def _init_routing(self, state: BrokerState) -> None:
        self._index: SubscriptionIndex = state.subscription_index
        self._retained = RetainedStore()
        self._offline_bytes: dict[str, int] = {}  # payload bytes queued for each offline session

    # -- topic checks --------------------------------------------------------------------

    @property
    def _checks_topics(self) -> bool:
        """Whether topics are checked at all (read live; without checks nothing is awaited)."""
        return self._access.checks_topics

    async def _topic_allowed(self, session: Session, topic: str, action: Action) -> bool:
        return await self._access.topic_allowed(session, topic, action)

    def _announce(self, client_id: str | None, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """The received and broadcast events of a message the broker publishes itself (HTTP
        publish, a bridge, a will), for the plugins that listen."""
        events = self._events
        if events.message_received or events.message_broadcast:
            message = IncomingApplicationMessage(None, topic, qos, payload, retain)
            for event, heard in (
                (BrokerEvents.MESSAGE_RECEIVED, events.message_received),
                (BrokerEvents.MESSAGE_BROADCAST, events.message_broadcast),
            ):
                if heard:
                    events.fire(event, client_id=client_id, message=message)

    def _denied_ends_connection(self, connection: Connection) -> bool:
        """Whether a refused PUBLISH or SUBSCRIBE ends the connection (``auth.deny_action``)."""
        if self._settings.current.auth.deny_action != "disconnect":
            return False
        connection.end_reason = "ACL denied (auth.deny_action = disconnect)"
        return True

    # -- publishing ----------------------------------------------------------------------

    async def accept_publish(
        self,
        connection: Connection,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: MessageProperties | None = None,
    ) -> bool:
        """Check, count and route one received PUBLISH (see PacketSink); False closes the connection."""
        session = connection.session
        client_id = session.client_id
        events = self._events
        message = IncomingApplicationMessage(None, topic, qos, payload, retain) if events.message_received else None
        if message is not None:
            events.fire(BrokerEvents.MESSAGE_RECEIVED, client_id=client_id, message=message)
        if not is_valid_topic_name(topic):
            log.warning("client %s published to invalid topic %r: closing", client_id, topic)
            return False
        if is_system_topic(topic):  # acknowledged, never delivered: $SYS is the broker's
            log.debug("client %s published to %s: discarded", client_id, topic)
            self._state.record_routed(client_id, [], 0)
            return True
        if self._checks_topics and not await self._topic_allowed(session, topic, Action.PUBLISH):
            log.info("client %s may not publish to %s", client_id, topic)
            return not self._denied_ends_connection(connection)
        if events.message_broadcast:
            message = message or IncomingApplicationMessage(None, topic, qos, payload, retain)
            events.fire(BrokerEvents.MESSAGE_BROADCAST, client_id=client_id, message=message)
        if retain:  # kept before routing: a subscription made meanwhile gets it one way or the other
            await self.retain_message(session, topic, payload, qos, properties=properties)
        await self._route(session, topic, payload, qos, retain=retain, properties=properties)
        return True

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        *,
        retain: bool,
        client_id: str | None,
        origin: str | None = None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Route a message as if ``client_id`` (or nobody, or the bridge ``origin``) had published
        it; return once what it changed in the store is committed (StoreError if it cannot be)."""
        sender = self._sessions.get(client_id, (None, None))[0] if client_id else None
        journal = self._journal
        self._announce(client_id, topic, payload, qos, retain)
        scope = journal.begin() if journal is not None else None
        try:
            if retain:
                await self.retain_message(sender, topic, payload, qos, properties=properties)
            await self._route(
                sender, topic, payload, qos, retain=retain, sender_id=client_id, origin=origin, properties=properties
            )
        finally:
            durable = journal.end(scope) if journal is not None and scope is not None else None
        if durable is not None:
            await durable

    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: bytes | bytearray | None, force_qos: int | None = None
    ) -> None:
        """amqtt's entry for what it routes itself (plugins' internal messages): routed at once."""
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
        origin: str | None = None,
        properties: MessageProperties | None = None,
        only: list[tuple[str, int]] | None = None,
    ) -> None:
        """Route one message to every matching subscription and bridge (but ``origin``, the
        bridge it came from) and count it; ``only``: to these (client id, granted QoS) alone.
        MQTT 5 subscribers get its ``properties``, and what their subscriptions' options say
        (no local, retain as published, identifiers)."""
        sender_id = sender.client_id if sender is not None else sender_id
        if self.bridges and only is None:
            self.bridges.offer(topic, data, qos, retain, origin, properties)
        if counted and self._state.observes_messages:
            self._state.record_message(RoutedMessage(topic, data, qos, retain, sender_id))
        routed: list[str] = []
        discarded = 0
        limits = self._settings.current.mqtt
        message = RoutedCopy(topic, data, properties, retain)
        connections, sessions, checks, journal = self._connections, self._sessions, self._checks_topics, self._journal
        faults = self._faults if self._faults.active else None
        seq = None  # the message's number in the store, made for its first persisted copy
        once: set[str] = set()  # MQTT 5 clients with subscription options get one plain copy
        targets = self._index.match(topic) if only is None else only
        plain = len(targets) if only is None else 0  # the entries after these are shared groups' picks
        if self._index.shared and only is None:  # one member of each matching group, connected ones first
            targets += self._index.shared.targets(topic, lambda c: c in connections and not connections[c].ended)
        for position, (client_id, granted_qos) in enumerate(targets):
            if checks:  # awaited: a take-over may happen meanwhile, so the connection is read after
                asked = connections.get(client_id)
                session = asked.session if asked is not None else sessions.get(client_id, (None,))[0]
                if session is None or not await self._topic_allowed(session, topic, Action.RECEIVE):
                    continue
            connection = connections.get(client_id)
            live = connection is not None and not connection.ended
            target = connection.session if connection is not None and live else sessions.get(client_id, (None,))[0]
            if target is None:
                continue
            shared = position >= plain
            options = self._matched_options(target, topic, sender_id, shared=shared)
            if options is not None and not shared:
                if options.skip or client_id in once:
                    continue  # no local (MQTT-3.8.3-3), or the one copy is out already
                once.add(client_id)
                granted_qos = options.qos
            routed.append(client_id)
            delivered_qos = min(qos, granted_qos)
            if journal is not None and delivered_qos and not target.clean_session and seq is None:
                seq = journal.next_seq()
            if connection is not None and live and target.transitions.state == "connected":
                persisted = seq if delivered_qos and not target.clean_session else None
                if faults is not None and (verdict := faults.delivery(client_id, topic, delivered_qos)):
                    discarded += not deliver_faulted(connection, verdict, message, delivered_qos, limits, persisted)
                elif options is not None:
                    discarded += not connection.deliver(
                        message, delivered_qos, limits, persisted, retain=options.retain and retain,
                        subscription_ids=options.identifiers,
                    )  # fmt: skip
                else:
                    discarded += not connection.deliver(message, delivered_qos, limits, persisted)
            elif delivered_qos > 0 and not target.clean_session and self._queue_offline(target, len(data)):
                kept = kept_retain(options, retain) if options is not None else None
                target.retained_messages.put_nowait(
                    QueuedMessage(sender, topic, data, delivered_qos, seq, properties, kept)
                )
                if journal is not None and seq is not None:
                    journal.queued(client_id, seq, topic, data, delivered_qos, properties=properties)
                if self._events.retained_message:  # amqtt's event for a copy queued for an offline session
                    queued = RetainedApplicationMessage(sender, topic, data, delivered_qos)
                    self._retained_event(client_id, queued)
            else:
                discarded += 1
        if counted:
            self._state.record_routed(sender_id, routed, discarded)

    # -- offline queues ------------------------------------------------------------------

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

    def _send_offline_queue(self, connection: Connection) -> None:
        """Deliver what was queued while the session was offline (retain flag 0, MQTT-3.3.1-9)."""
        session = connection.session
        self._offline_bytes.pop(session.client_id, None)
        if not queue_size(session, "retained_messages"):
            return
        queue = session.retained_messages
        now = time.time()
        while not queue.empty():
            message = queue.get_nowait()
            seq = getattr(message, "seq", None)
            properties: MessageProperties | None = getattr(message, "properties", None)
            if properties is not None and properties.expired(now):  # dropped, counted (3.3.2.3.3)
                self._state.record_dropped(1)
                if seq is not None and self._journal is not None:
                    self._journal.acknowledged(session.client_id, seq)
                continue
            matched: Matched | None = getattr(message, "matched", None)
            connection.send_in_background(
                message.topic, bytes(message.data), message.qos or 0, seq=seq, properties=properties,
                retain=matched is not None and matched.retain,
                subscription_ids=matched.identifiers if matched is not None else (),
            )  # fmt: skip

    def _forget_queued(self, client_id: str) -> int:
        """Forget what a session about to be discarded holds; the copies lost with it (its offline
        queue and its unacknowledged messages)."""
        self._offline_bytes.pop(client_id, None)
        session = self._sessions.get(client_id, (None,))[0]
        if session is None:
            return 0
        return queue_size(session, "retained_messages") + len(session.inflight_out)

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, connection: Connection, packet_id: int, filters: list[tuple[str, int]]) -> None:
        """Apply a SUBSCRIBE the connection read (see PacketSink): SUBACK, then the retained messages."""
        session = connection.session
        granted: list[int] = []
        denied = False
        for topic_filter, qos in filters:
            code = await self._grant(session, topic_filter, qos)
            granted.append(code)
            denied = denied or (code == _REFUSED and _valid_filter(topic_filter))
        if denied and self._denied_ends_connection(connection):
            await connection.handler.handle_disconnect(None)  # no SUBACK (auth.deny_action = disconnect)
            return
        added = [(f, qos) for (f, _), qos in zip(filters, granted, strict=True) if qos != _REFUSED]
        for topic_filter, qos in added:
            self._index.subscribe(session.client_id, topic_filter, qos)
        self._state.subscriptions_changed()
        if self._journal is not None and not session.clean_session and added:
            await self._journal.subscribed(session.client_id, added)  # durable before its SUBACK
        await connection.handler.acknowledge_subscription(packet_id, granted)
        for (topic_filter, qos), code in zip(filters, granted, strict=True):
            if code == _REFUSED:
                continue
            self._events.fire(BrokerEvents.CLIENT_SUBSCRIBED, client_id=session.client_id, topic=topic_filter, qos=qos)
            if not topic_filter.startswith(SHARE_PREFIX):  # none for a shared subscription (MQTT 5, 4.8.2)
                await self._send_retained(connection, topic_filter, code)

    async def _grant(self, session: Session, topic_filter: str, qos: int) -> int:
        """The QoS granted for one filter, or 0x80 (see ``_refusal``)."""
        return qos if await self._refusal(session, topic_filter) is None else _REFUSED

    async def _refusal(self, session: Session, topic_filter: str) -> int | None:
        """Why one filter is refused, as an MQTT 5 reason code: malformed (0x8F), shared
        subscriptions switched off (0x9E), refused by the ACL or a topic plugin, which see a
        shared subscription's own filter (0x87); None if it is not."""
        if not _valid_filter(topic_filter):
            return 0x8F
        shared = split_shared(topic_filter)
        if shared is not None and not self._settings.current.mqtt.shared_subscriptions:
            return 0x9E
        checked = shared[1] if shared is not None else topic_filter
        if self._checks_topics and not await self._topic_allowed(session, checked, Action.SUBSCRIBE):
            return 0x87
        return None

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """A subscription made outside a SUBSCRIBE (amqtt's plugin context): checked and added."""
        topic_filter, qos = subscription
        code = await self._grant(session, topic_filter, qos)
        if code != _REFUSED:
            self._index.subscribe(session.client_id, topic_filter, code)
            self._state.subscriptions_changed()
            if self._journal is not None and not session.clean_session:
                self._journal.subscribed(session.client_id, [(topic_filter, code)])
        return code

    async def unsubscribe(self, connection: Connection, packet_id: int, filters: list[str]) -> None:
        """Apply an UNSUBSCRIBE the connection read (see PacketSink), then UNSUBACK."""
        client_id = connection.client_id
        existed = []
        for topic_filter in filters:
            existed.append(self._index.unsubscribe(client_id, topic_filter))
            self._events.fire(BrokerEvents.CLIENT_UNSUBSCRIBED, client_id=client_id, topic=topic_filter)
        self._state.subscriptions_changed()
        if self._journal is not None and not connection.session.clean_session:
            await self._journal.unsubscribed(client_id, filters)  # durable before its UNSUBACK
        if connection.v5 is not None:
            await self.unsubscribed5(connection, packet_id, filters, existed)
        else:
            await connection.handler.acknowledge_unsubscription(packet_id)

    @property
    def subscriptions(self) -> dict[str, list[tuple[Session, int]]]:
        """amqtt's view of the subscriptions (its ``$SYS`` plugin counts them), made on request."""
        sessions = self._sessions
        return {
            topic_filter: [(sessions[client_id][0], qos) for client_id, qos in holders if client_id in sessions]
            for topic_filter, holders in self._index.by_filter().items()
        }
