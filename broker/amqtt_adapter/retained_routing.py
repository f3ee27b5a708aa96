"""``RetainedRouting``: retained messages (a base class of ``Router``): kept by topic in edgemq's
own store (broker/mqtt/retained.py, and the journal when persisting), sent to a new subscription
that matches them (with their MQTT 5 properties, unless expired), and amqtt's views and events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from amqtt.broker import RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.events import BrokerEvents
from amqtt.session import Session

from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.retained import RetainedStore

if TYPE_CHECKING:
    from broker.amqtt_adapter.connection import Connection
    from broker.amqtt_adapter.plugin_events import PluginEvents
    from broker.persistence.journal import Journal
    from broker.state import BrokerState

__all__ = ["RetainedRouting"]


class RetainedRouting:
    """The retained-message half of the router (see the module docstring)."""

    _retained: RetainedStore
    if TYPE_CHECKING:  # the Router's
        _journal: Journal | None
        _events: PluginEvents
        _state: BrokerState

        @property
        def _checks_topics(self) -> bool: ...

        async def _topic_allowed(self, session: Session, topic: str, action: Action) -> bool: ...

    async def _send_retained(
        self, connection: Connection, topic_filter: str, granted_qos: int, subscription_ids: tuple[int, ...] = ()
    ) -> None:
        """The retained messages one new subscription matches, to that client only (MQTT-3.3.1-6),
        in the background (the client's next packet is read meanwhile); not those expired."""
        now = time.time()
        for retained in self._retained.matching(topic_filter):
            properties = retained.properties
            if properties is not None and properties.expired(now):  # past its expiry: dropped, counted
                self._state.record_dropped(1)
                self.delete_retained(retained.topic)
                continue
            if not self._checks_topics or await self._topic_allowed(connection.session, retained.topic, Action.RECEIVE):
                qos = min(granted_qos, retained.qos)
                connection.send_in_background(
                    retained.topic, retained.payload, qos, retain=True, counted=False, properties=properties,
                    subscription_ids=subscription_ids,
                )  # fmt: skip

    # -- retained messages ---------------------------------------------------------------

    async def retain_message(
        self,
        source_session: Session | None,
        topic_name: str | None,
        data: bytes | bytearray | None,
        qos: int | None = None,
        *,
        properties: MessageProperties | None = None,
    ) -> None:
        """Keep (or, with an empty payload, forget) a topic's retained message (amqtt's entry,
        also used by plugins through their context)."""
        if topic_name is None:
            return
        payload = bytes(data or b"")
        if not payload and self._retained.get(topic_name) is None:
            return
        self._retained.put(topic_name, payload, qos or 0, properties)
        if self._journal is not None:
            self._journal.retain(topic_name, payload, qos or 0, properties=properties)
        if self._events.retained_message:
            self._retained_event(None, RetainedApplicationMessage(source_session, topic_name, payload, qos or 0))

    def _retained_event(self, client_id: str | None, message: RetainedApplicationMessage) -> None:
        """amqtt's retained-message event: a topic's retained message (None) or a copy queued for
        the offline session ``client_id``; an empty payload is a retained message cleared."""
        self._events.fire(BrokerEvents.RETAINED_MESSAGE, client_id=client_id, retained_message=message)

    def retained(self) -> list[tuple[str, int, int]]:
        """(topic, qos, payload size) of every retained message."""
        return [(r.topic, r.qos, len(r.payload)) for r in self._retained.all()]

    def retained_message(self, topic: str) -> tuple[int, bytes] | None:
        """(qos, payload) of ``topic``'s retained message, or None."""
        found = self._retained.get(topic)
        return None if found is None else (found.qos, found.payload)

    def delete_retained(self, topic: str) -> bool:
        """Forget the retained message of ``topic`` (in the store too); False if there is none."""
        deleted = self._retained.delete(topic)
        if deleted and self._journal is not None:
            self._journal.retain(topic, b"", 0)
        if deleted and self._events.retained_message:
            self._retained_event(None, RetainedApplicationMessage(None, topic, b"", 0))
        return deleted

    @property
    def retained_messages(self) -> dict[str, RetainedApplicationMessage]:
        """amqtt's view of the retained messages (plugins read it), made on request."""
        return {r.topic: RetainedApplicationMessage(None, r.topic, r.payload, r.qos) for r in self._retained.all()}
