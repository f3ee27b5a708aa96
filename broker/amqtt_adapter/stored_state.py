"""``StoredState``: what the broker reads back from the store at start-up, and the discards of
persistent sessions it must still write there.

A restored session is offline until its client connects again (session present = 1). Copies
that had a packet id are in flight: resent with DUP=1 on resume (a QoS 2 one whose PUBREC came
resends its PUBREL); the others are its offline queue. Received QoS 2 ids wait for their PUBREL.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import IncomingApplicationMessage, Session

from broker.amqtt_adapter.outgoing import OutgoingCopy
from broker.amqtt_adapter.session import EdgeSession, QueuedMessage
from broker.mqtt.retained import RetainedStore
from broker.mqtt.subscriptions import SubscriptionIndex
from broker.persistence.journal import Journal, Snapshot, StoredForward, StoredSession
from broker.persistence.store import StoreError
from broker.state import BrokerState, ClientInfo

__all__ = ["StoredState", "restored_session"]

log = logging.getLogger("edgemq.mqtt")


class StoredState:
    """The store's side of ``EdgeAmqttBroker`` (a base class of it)."""

    _journal: Journal | None
    _state: BrokerState
    _sessions: dict[str, tuple[Session, Any]]  # amqtt's
    _index: SubscriptionIndex
    _retained: RetainedStore
    _offline_bytes: dict[str, int]
    _undiscarded: set[str]
    """Discarded sessions the store still holds (their write failed)."""
    restored_forwards: dict[str, list[StoredForward]] = {}  # noqa: RUF012 - replaced, never changed in place
    """The bridges' queues read back at start-up, by bridge name (for MqttCore's bridges)."""

    def _restore(self, snapshot: Snapshot) -> None:
        """Take back the retained messages and persistent sessions the store holds (offline)."""
        self.restored_forwards = snapshot.forwards
        for topic, payload, qos in snapshot.retained:
            self._retained.put(topic, payload, qos, snapshot.retained_properties.get(topic))
        for stored in snapshot.sessions:
            session, queued_bytes = restored_session(stored)
            client_id = stored.client_id
            self._sessions[client_id] = (session, None)
            if queued_bytes:
                self._offline_bytes[client_id] = queued_bytes
            for topic_filter, qos in stored.subscriptions:
                self._index.subscribe(client_id, topic_filter, qos)
            self._state.record_restored(
                ClientInfo(client_id, stored.username or "", 0, stored.protocol, False, "", 0, datetime.now(UTC))
            )
        self._state.subscriptions_changed()
        if snapshot.sessions or snapshot.retained:
            log.info(
                "restored from %s: %d sessions, %d queued messages, %d retained messages",
                self._journal.store.path if self._journal is not None else "?",
                len(snapshot.sessions),
                snapshot.message_count,
                len(snapshot.retained),
            )

    async def flush_discards(self) -> None:
        """Write the discards that failed before (at shutdown: the store may work again)."""
        for client_id in list(self._undiscarded):
            with contextlib.suppress(StoreError):
                await self._discard_persisted(client_id)

    def _persisted(self, client_id: str) -> bool:
        session = self._sessions.get(client_id, (None,))[0]
        return self._journal is not None and session is not None and not session.clean_session

    async def _discard_persisted(self, client_id: str) -> None:
        """Remove a discarded session from the store; until that is committed the id stays in
        ``_undiscarded`` (a restart would otherwise bring the session back)."""
        if self._journal is None:
            return
        self._undiscarded.add(client_id)
        await self._journal.session_discarded(client_id)
        self._undiscarded.discard(client_id)


def restored_session(stored: StoredSession) -> tuple[EdgeSession, int]:
    """The offline session ``stored`` describes, and the payload bytes of its offline queue."""
    session = EdgeSession()
    session.__dict__.update(
        client_id=stored.client_id,
        clean_session=False,
        username=stored.username,
        protocol_level=stored.protocol,
    )
    session.transitions.state = "disconnected"
    queued_bytes = 0
    for message in stored.messages:
        if message.packet_id is None:
            session.retained_messages.put_nowait(
                QueuedMessage(None, message.topic, message.payload, message.qos, message.seq, message.properties)
            )
            queued_bytes += len(message.payload)
            continue
        copy = OutgoingCopy(
            message.packet_id, message.topic, message.qos, message.payload, False, message.seq, message.properties
        )
        copy.publish_packet = copy.build_publish_packet(dup=True)  # sent before: resent as a duplicate
        if message.released:
            copy.pubrel_packet = PubrelPacket.build(message.packet_id)
        session.inflight_out[message.packet_id] = copy
    for packet_id in stored.incoming_qos2:
        session.inflight_in[packet_id] = IncomingApplicationMessage(packet_id, "", 2, b"", False)
    return session, queued_bytes
