"""``Mqtt5Routing``: what routing does for MQTT 5 subscriptions (a base class of ``Router``).

MQTT 5 SUBSCRIBE carries options per filter (no local, retain as published, retain handling) and
a subscription identifier (3.8.3.1, 3.8.2.1.2); they are kept on the session for the
subscriptions that have any (``EdgeSession.subscription_options``), so routing to everyone else
costs nothing more. A copy to a client carries the identifiers of all its subscriptions the topic
matches (3.3.4-3), keeps its retain flag if one of them asks for it, and is not sent back to its
publisher when all of them say no local.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from amqtt.events import BrokerEvents
from amqtt.session import Session

from broker.amqtt_adapter.session import EdgeSession
from broker.mqtt.framing import ProtocolViolation
from broker.mqtt.properties import PROTOCOL_ERROR
from broker.mqtt.shared import split_shared
from broker.mqtt.topics import topic_matches
from broker.mqtt.v5_packets import Subscription5, encode_suback5, encode_unsuback5
from broker.mqtt.v5_session import SubscriptionOptions

if TYPE_CHECKING:
    from broker.amqtt_adapter.connection import Connection
    from broker.amqtt_adapter.plugin_events import PluginEvents
    from broker.mqtt.subscriptions import SubscriptionIndex
    from broker.persistence.journal import Journal
    from broker.state import BrokerState

__all__ = ["Matched", "Mqtt5Routing", "kept_retain"]

_NO_SUBSCRIPTION_EXISTED = 0x11


class Matched(NamedTuple):
    """What a client's matching MQTT 5 subscriptions ask of one copy."""

    skip: bool
    """No local: the client published it and every matching subscription says no local."""
    retain: bool
    """Retain as published: the copy keeps the message's retain flag."""
    identifiers: tuple[int, ...]
    qos: int
    """The highest QoS granted among them: the client gets one copy (3.3.4-2, -3)."""


def kept_retain(matched: Matched, retain: bool) -> Matched:
    """``matched`` for a copy queued for later: its retain flag as it will be sent (the message's
    if retain as published, else 0), since the queue does not keep the message's flag."""
    return matched._replace(retain=matched.retain and retain)


class Mqtt5Routing:
    """The MQTT 5 subscription half of the router (see the module docstring)."""

    if TYPE_CHECKING:  # the Router's
        _index: SubscriptionIndex
        _state: BrokerState
        _journal: Journal | None
        _events: PluginEvents

        async def _refusal(self, session: Session, topic_filter: str) -> int | None: ...

        def _denied_ends_connection(self, connection: Connection) -> bool: ...

        async def _send_retained(
            self, connection: Connection, topic_filter: str, granted_qos: int, subscription_ids: tuple[int, ...] = ()
        ) -> None: ...

    def _matched_options(
        self, session: Session, topic: str, sender_id: str | None, *, shared: bool = False
    ) -> Matched | None:
        """What the client's plain subscriptions matching ``topic`` ask (``shared``: its shared
        ones, whose group picked it for this copy); None: nothing special."""
        options = session.subscription_options if isinstance(session, EdgeSession) else None
        if not options:
            return None
        plain_match = skip = False
        retain = False
        identifiers: list[int] = []
        qos = 0
        for topic_filter, granted in self._index.filters_of(session.client_id).items():
            inner = split_shared(topic_filter)
            if (inner is not None) != shared or not topic_matches(inner[1] if inner else topic_filter, topic):
                continue
            qos = max(qos, granted)
            found = options.get(topic_filter)
            if found is None:
                plain_match = True
                continue
            retain = retain or found.retain_as_published
            plain_match = plain_match or not found.no_local
            if found.identifier is not None and found.identifier not in identifiers:
                identifiers.append(found.identifier)
        skip = not plain_match and sender_id == session.client_id and not shared
        return Matched(skip, retain, tuple(sorted(identifiers)), qos)

    async def subscribe5(
        self, connection: Connection, packet_id: int, identifier: int | None, filters: list[Subscription5]
    ) -> None:
        """Apply an MQTT 5 SUBSCRIBE (see PacketSink): SUBACK with a reason code per filter (3.9.3),
        then the retained messages its retain handling asks for."""
        session = connection.session
        assert isinstance(session, EdgeSession)
        reasons: list[int] = []
        for subscription in filters:
            if subscription.no_local and split_shared(subscription.topic_filter) is not None:
                raise ProtocolViolation("no local on a shared subscription (MQTT-3.8.3-4)", PROTOCOL_ERROR)
            refusal = await self._refusal(session, subscription.topic_filter)
            reasons.append(subscription.qos if refusal is None else refusal)
        if any(reason == 0x87 for reason in reasons) and self._denied_ends_connection(connection):
            await connection.handler.handle_disconnect(None)  # no SUBACK (auth.deny_action = disconnect)
            return
        existing = self._index.filters_of(session.client_id)
        added: list[tuple[str, int]] = []
        for subscription, reason in zip(filters, reasons, strict=True):
            if reason >= 0x80:
                continue
            topic_filter = subscription.topic_filter
            self._index.subscribe(session.client_id, topic_filter, subscription.qos)
            added.append((topic_filter, subscription.qos))
            kept = SubscriptionOptions(subscription.no_local, subscription.retain_as_published, identifier)
            if kept != SubscriptionOptions():
                if session.subscription_options is None:
                    session.subscription_options = {}
                session.subscription_options[topic_filter] = kept
            elif session.subscription_options:
                session.subscription_options.pop(topic_filter, None)
        self._state.subscriptions_changed()
        if self._journal is not None and not session.clean_session and added:
            options = session.subscription_options  # durable before its SUBACK:
            await self._journal.subscribed(session.client_id, added, options=options)
        await connection.handler.write_bytes(encode_suback5(packet_id, reasons))
        ids = (identifier,) if identifier is not None else ()
        for subscription, reason in zip(filters, reasons, strict=True):
            if reason >= 0x80:
                continue
            topic_filter = subscription.topic_filter
            self._events.fire(
                BrokerEvents.CLIENT_SUBSCRIBED, client_id=session.client_id, topic=topic_filter, qos=reason
            )
            handling = subscription.retain_handling  # 0: send, 1: only for a new subscription, 2: never
            if split_shared(topic_filter) is None and (
                handling == 0 or (handling == 1 and topic_filter not in existing)
            ):
                await self._send_retained(connection, topic_filter, reason, ids)

    async def unsubscribed5(
        self, connection: Connection, packet_id: int, filters: list[str], existed: list[bool]
    ) -> None:
        """UNSUBACK for an MQTT 5 client: 0x11 for a filter it had no subscription to (3.11.3)."""
        session = connection.session
        if isinstance(session, EdgeSession) and session.subscription_options:
            for topic_filter in filters:
                session.subscription_options.pop(topic_filter, None)
        reasons = [0 if found else _NO_SUBSCRIPTION_EXISTED for found in existed]
        await connection.handler.write_bytes(encode_unsuback5(packet_id, reasons))
