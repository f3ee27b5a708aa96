"""``SharedHandover``: what a shared subscription's member had in flight goes to another member
when its session ends (MQTT 5.0 4.8.2: "the Server SHOULD ... send it to another subscriber").

A copy counts as the group's when none of the leaving client's plain subscriptions match its topic
(a copy that one of them also matches stays the client's, and ends with its session, as before).
Each such copy goes to the next member of the first of the client's groups whose filter matches,
connected members first, once; the copy is then routed to that member alone (its queue, counters
and store as for any routed copy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqtt.session import Session

from broker.amqtt_adapter.session import queue_size
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.shared import split_shared
from broker.mqtt.topics import topic_matches

if TYPE_CHECKING:
    from broker.amqtt_adapter.connection import Connection
    from broker.mqtt.subscriptions import SubscriptionIndex
    from broker.persistence.journal import Journal

__all__ = ["SharedHandover"]


class SharedHandover:
    """The shared-subscription hand-over half of ``EdgeAmqttBroker`` (a base class of it)."""

    if TYPE_CHECKING:  # the broker's
        _index: SubscriptionIndex
        _sessions: dict[str, tuple[Session, Any]]
        _connections: dict[str, Connection]
        _journal: Journal | None

        async def _route(self, sender: Session | None, topic: str, data: bytes, qos: int, **options: Any) -> None: ...

    async def _hand_over_shared(self, client_id: str) -> int:
        """Route the group copies a session about to end holds to other members; how many."""
        session = self._sessions.get(client_id, (None,))[0]
        filters = self._index.filters_of(client_id)
        groups = [(shared, f) for f in filters if (shared := split_shared(f)) is not None]
        if session is None or not groups:
            return 0
        plain = [f for f in filters if split_shared(f) is None]
        queued: list[Any] = []
        if queue_size(session, "retained_messages"):
            queue = session.retained_messages
            while not queue.empty():
                queued.append(queue.get_nowait())
        connections = self._connections
        handed = 0
        for message in [*(m for m in session.inflight_out.values() if m.qos), *queued]:
            topic = message.topic
            target = None
            if not any(topic_matches(f, topic) for f in plain):
                target = next(
                    (
                        self._index.shared.successor(
                            name, inner, client_id, lambda c: c in connections and not connections[c].ended
                        )
                        for (name, inner), _ in groups
                        if topic_matches(inner, topic)
                    ),
                    None,
                )
            if target is None:
                if message in queued:
                    session.retained_messages.put_nowait(message)  # stays: lost with the session, counted
                continue
            properties: MessageProperties | None = getattr(message, "properties", None)
            await self._route_to(target, topic, bytes(message.data), message.qos or 0, properties)
            handed += 1
        return handed

    async def _route_to(
        self, target: tuple[str, int], topic: str, data: bytes, qos: int, properties: MessageProperties | None
    ) -> None:
        journal = self._journal
        scope = journal.begin() if journal is not None else None
        try:
            await self._route(None, topic, data, qos, counted=False, only=[target], properties=properties)
        finally:
            durable = journal.end(scope) if journal is not None and scope is not None else None
        if durable is not None:
            await durable
