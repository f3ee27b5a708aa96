"""``StoredState``: what the broker reads back from the store at start-up, and the discards of
persistent sessions it must still write there.

A restored session is offline until its client connects again (session present = 1). Copies
that had a packet id are in flight: resent with DUP=1 on resume (a QoS 2 one whose PUBREC came
resends its PUBREL); the others are its offline queue. Received QoS 2 ids wait for their PUBREL.

An MQTT 5 session comes back with its Session Expiry Interval and its subscriptions' options and
identifiers. Its time left counts from when its connection ended (the wall clock, stored then;
from the start for one whose broker stopped while it was connected): a session whose time ran
out while the broker was down is discarded at the start, one with time left is armed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import IncomingApplicationMessage, Session

from broker.amqtt_adapter.outgoing import OutgoingCopy
from broker.amqtt_adapter.session import EdgeSession, QueuedMessage
from broker.mqtt.retained import RetainedStore
from broker.mqtt.subscriptions import SubscriptionIndex
from broker.mqtt.v5_session import NEVER_EXPIRES, V5Connect
from broker.persistence.journal import Journal, Snapshot, StoredForward, StoredSession
from broker.persistence.store import StoreError
from broker.state import BrokerState, ClientInfo

if TYPE_CHECKING:
    from broker.amqtt_adapter.router5 import Matched

__all__ = ["StoredState", "restored_session", "time_left"]

log = logging.getLogger("edgemq.mqtt")
_MQTT_5 = 5


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

    if TYPE_CHECKING:  # provided by the other halves of the broker

        def _expire_later(self, session: Session, remaining: float | None = None) -> None: ...

        def _matched_options(
            self, session: Session, topic: str, sender_id: str | None, *, shared: bool = False
        ) -> Matched | None: ...

    async def _restore(self, snapshot: Snapshot) -> None:
        """Take back the retained messages and persistent sessions the store holds (offline);
        discard the MQTT 5 sessions that expired meanwhile."""
        self.restored_forwards = snapshot.forwards
        for topic, payload, qos in snapshot.retained:
            self._retained.put(topic, payload, qos, snapshot.retained_properties.get(topic))
        now, expired = time.time(), []
        for stored in snapshot.sessions:
            client_id = stored.client_id
            remaining = time_left(stored, now)
            if remaining is not None and remaining <= 0:
                log.info("session expired while the broker was down: client_id=%s", client_id)
                expired.append(client_id)
                continue
            for topic_filter, qos in stored.subscriptions:
                self._index.subscribe(client_id, topic_filter, qos)
            session, queued_bytes = restored_session(stored, self._matched_options)
            self._sessions[client_id] = (session, None)
            if queued_bytes:
                self._offline_bytes[client_id] = queued_bytes
            if remaining is not None:
                self._expire_later(session, remaining)
                if stored.ended_at is None and self._journal is not None:  # its time left counts from now
                    self._journal.session_offline(client_id, stored.session_expiry, now)
            self._state.record_restored(
                ClientInfo(client_id, stored.username or "", 0, stored.protocol, False, "", 0, datetime.now(UTC))
            )
        self._state.subscriptions_changed()
        # one commit for all; a failed discard stays in _undiscarded (asked again at its CONNECT)
        await asyncio.gather(*map(self._discard_persisted, expired), return_exceptions=True)
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
        """Whether the store holds the session (an MQTT 5 one kept until its DISCONNECT set expiry 0 too)."""
        session = self._sessions.get(client_id, (None,))[0]
        if self._journal is None or session is None:
            return False
        return not session.clean_session or (isinstance(session, EdgeSession) and session.in_store)

    async def _save_session(self, session: Session) -> None:
        """Write a persistent session made or resumed (before its CONNACK), with its MQTT 5
        Session Expiry Interval; a stored one resumed with expiry 0 too (discarded if a restart
        comes first)."""
        if self._journal is None or (session.clean_session and not self._persisted(session.client_id)):
            return
        v5 = session.v5 if isinstance(session, EdgeSession) else None
        expiry = v5.session_expiry if v5 is not None else None
        await self._journal.session_saved(session.client_id, session.username, session.protocol_level, expiry=expiry)
        if isinstance(session, EdgeSession):
            session.in_store = True

    async def _discard_persisted(self, client_id: str) -> None:
        """Remove a discarded session from the store; until that is committed the id stays in
        ``_undiscarded`` (a restart would otherwise bring the session back)."""
        if self._journal is None:
            return
        self._undiscarded.add(client_id)
        await self._journal.session_discarded(client_id)
        self._undiscarded.discard(client_id)


def time_left(stored: StoredSession, now: float) -> float | None:
    """Seconds an MQTT 5 session has left at wall-clock time ``now`` (None: it never expires)."""
    if stored.protocol != _MQTT_5 or stored.session_expiry is None or stored.session_expiry >= NEVER_EXPIRES:
        return None  # MQTT 3.1.1, or a version 3 store's MQTT 5 session (its expiry was not kept)
    offline = max(0.0, now - stored.ended_at) if stored.ended_at is not None else 0.0
    return stored.session_expiry - offline


def restored_session(
    stored: StoredSession, matching: Callable[[Session, str, str | None], Matched | None] | None = None
) -> tuple[EdgeSession, int]:
    """The offline session ``stored`` describes, and the payload bytes of its offline queue;
    ``matching``: what its MQTT 5 subscriptions ask of a copy (the identifiers it carries)."""
    session = EdgeSession()
    session.__dict__.update(
        client_id=stored.client_id,
        clean_session=False,
        username=stored.username,
        protocol_level=stored.protocol,
        in_store=True,
    )
    if stored.protocol == _MQTT_5:
        expiry = NEVER_EXPIRES if stored.session_expiry is None else stored.session_expiry
        session.v5 = V5Connect(session_expiry=expiry)
        session.subscription_options = dict(stored.subscription_options) or None
    session.transitions.state = "disconnected"
    queued_bytes = 0
    for message in stored.messages:
        matched = matching(session, message.topic, None) if matching is not None else None
        if message.packet_id is None:
            session.retained_messages.put_nowait(
                QueuedMessage(
                    None, message.topic, message.payload, message.qos, message.seq, message.properties, matched
                )
            )
            queued_bytes += len(message.payload)
            continue
        ids = matched.identifiers if matched is not None else ()
        copy = OutgoingCopy(
            message.packet_id, message.topic, message.qos, message.payload, False, message.seq, message.properties, ids
        )
        copy.publish_packet = copy.build_publish_packet(dup=True)  # sent before: resent as a duplicate
        if message.released:
            copy.pubrel_packet = PubrelPacket.build(message.packet_id)
        session.inflight_out[message.packet_id] = copy
    for packet_id in stored.incoming_qos2:
        session.inflight_in[packet_id] = IncomingApplicationMessage(packet_id, "", 2, b"", False)
    return session, queued_bytes
