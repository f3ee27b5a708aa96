"""The broker state both sides share: counters, client records, subscription table.

The MQTT side (the amqtt adapter) is the only writer and calls the ``record_*`` methods at the
moment amqtt acts. The admin API only reads, through methods that return frozen snapshots.
This module imports neither amqtt nor Starlette.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from broker.bridges.bridge import BridgeStats
from broker.mqtt.subscriptions import SubscriptionIndex
from broker.mqtt.topics import TreeNode
from broker.persistence.store import StoreStats

__all__ = [
    "BrokerState",
    "ClientInfo",
    "ClientSnapshot",
    "Counts",
    "RoutedMessage",
    "Stats",
    "SubscriptionSnapshot",
    "TreeNode",
]

log = logging.getLogger("edgemq.state")


@dataclass(slots=True, unsafe_hash=True)
class ClientInfo:
    """What a client told the broker in its CONNECT (no password, ever). Read-only: shared by
    the state and every snapshot (not a frozen dataclass only because one is made per connect
    and a frozen one costs five times as much to make; hashable like one)."""

    client_id: str
    username: str
    keepalive: int
    protocol: int
    clean_start: bool
    ip_address: str
    port: int
    connected_at: datetime
    will_topic: str | None = None
    will_message: bytes | None = None
    session_expiry_interval: int = 0
    """MQTT 5: seconds the session outlives its connection, as in effect (0xFFFFFFFF: it never
    ends); the fields from here on mean something for ``protocol`` 5 only."""
    receive_maximum: int = 65_535
    """MQTT 5: unacknowledged QoS 1 and 2 PUBLISHes the client accepts at once (CONNECT's
    Receive Maximum; 65 535 when it gave none)."""
    maximum_packet_size: int | None = None
    """MQTT 5: the largest packet the client accepts, in bytes; None when it set no limit."""
    topic_alias_maximum: int = 0
    """MQTT 5: the highest topic alias the client accepts from the broker (0: none)."""
    _iso: str = field(default="", init=False, repr=False, compare=False)

    @property
    def connected_at_iso(self) -> str:
        """``connected_at`` in ISO 8601, formatted on first use and kept (listings of 10 000
        clients use it; a connect does not pay for it)."""
        if not self._iso:
            self._iso = self.connected_at.isoformat()
        return self._iso


@dataclass(frozen=True, slots=True)
class ClientSnapshot:
    """A session as the admin API shows it."""

    info: ClientInfo
    connected: bool
    messages_received: int
    """Messages the broker routed to this client (one per matching subscription)."""
    messages_sent: int
    """Messages this client published that the broker accepted."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Global counters (spec section 2, "Counters")."""

    client_size: int
    message_in: int
    message_out: int
    message_drop: int


@dataclass(frozen=True, slots=True)
class Counts:
    """Population sizes (Prometheus gauges), now or at their peak since start."""

    connections: int
    """Connected clients."""
    sessions: int
    """Sessions: connected clients and offline persistent sessions."""
    topics: int
    """Distinct topic filters subscribed to."""
    subscribers: int
    """Subscriptions (client, filter pairs)."""


@dataclass(frozen=True, slots=True)
class SubscriptionSnapshot:
    """One session's filters with their granted QoS, in subscription order."""

    client_id: str
    subscriptions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """A message the broker accepted and routed, as message observers see it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    sender: str | None
    """Client id of the publisher; None for messages without one."""


@dataclass(slots=True)
class _ClientRecord:
    info: ClientInfo
    connected: bool = True
    messages_received: int = 0
    messages_sent: int = 0


MessageObserver = Callable[[RoutedMessage], None]


class BrokerState:
    """Live broker state; written by the MQTT side, read by everyone through snapshots."""

    def __init__(self, subscriptions: SubscriptionIndex | None = None) -> None:
        self._message_in = 0
        self._message_out = 0
        self._message_drop = 0
        self._clients: dict[str, _ClientRecord] = {}
        self._index = subscriptions if subscriptions is not None else SubscriptionIndex()
        self._listeners: list[Callable[[], None]] = []
        self._message_observers: list[MessageObserver] = []
        self._connected = 0
        self._peaks = [0, 0, 0, 0]  # Counts fields; kept as ints, updated on every connect
        self._store_stats: Callable[[], StoreStats] | None = None
        self._bridge_stats: Callable[[], list[BridgeStats]] | None = None

    # -- writers (MQTT side only) -------------------------------------------------------

    def record_connected(self, info: ClientInfo) -> None:
        """A client's CONNECT was accepted; a resumed session keeps its counters."""
        clients = self._clients
        record = clients.get(info.client_id)
        if record is None:
            clients[info.client_id] = _ClientRecord(info)
            self._connected += 1
        else:
            record.info = info
            self._connected += not record.connected
            record.connected = True
        peaks = self._peaks  # only connections and sessions can grow here
        peaks[0] = max(peaks[0], self._connected)
        peaks[1] = max(peaks[1], len(clients))
        if self._listeners:
            self._changed()

    def record_restored(self, info: ClientInfo) -> None:
        """A persistent session read back from the store at start-up: listed as disconnected."""
        self._clients[info.client_id] = _ClientRecord(info, connected=False)
        self._peaks[1] = max(self._peaks[1], len(self._clients))
        self._changed()

    def record_disconnected(self, client_id: str) -> None:
        """A client's connection ended; its session, if persistent, stays as offline."""
        record = self._clients.get(client_id)
        if record is not None:
            self._connected -= record.connected
            record.connected = False
            self._changed()

    def record_session_discarded(self, client_id: str, dropped: int = 0) -> None:
        """A session ended for good: forget its record and subscriptions; its queue is ``dropped``."""
        self._message_drop += dropped
        record = self._clients.pop(client_id, None)
        if record is not None:
            self._connected -= record.connected
        self._changed()

    def subscriptions_changed(self) -> None:
        """The router changed the subscription index (peaks and listeners follow)."""
        self._update_peaks()
        self._changed()

    def record_routed(self, sender: str | None, routed_to: list[str], discarded: int) -> None:
        """One accepted message was routed.

        ``sender`` is the publishing client (None for the HTTP API without a client id),
        ``routed_to`` names the client of every subscription the message was routed to (a
        client with two matching filters appears twice), ``discarded`` counts the routed
        copies that could not be kept (for example QoS 0 for an offline session).
        """
        self._message_in += 1
        self._message_out += len(routed_to)
        self._message_drop += discarded if routed_to else 1
        if sender is not None:
            record = self._clients.get(sender)
            if record is not None:
                record.messages_sent += 1
        clients = self._clients
        for client_id in routed_to:
            record = clients.get(client_id)
            if record is not None:
                record.messages_received += 1
        self._changed()

    def record_dropped(self, count: int) -> None:
        """Routed copies that were lost before delivery (the connection failed, no ack came)."""
        self._message_drop += count
        self._changed()

    def record_message(self, message: RoutedMessage) -> None:
        """Show a routed message to the observers (the caller checks ``observes_messages``)."""
        for observer in list(self._message_observers):
            try:
                observer(message)
            except Exception:
                log.exception("message observer %r failed", observer)

    def reset_counters(self) -> None:
        """Zero the global counters (the testing helpers' reset)."""
        self._message_in = self._message_out = self._message_drop = 0
        self._changed()

    # -- readers -----------------------------------------------------------------------

    @property
    def observes_messages(self) -> bool:
        """Whether anyone observes routed messages (so the router can skip the work)."""
        return bool(self._message_observers)

    def observe_messages(self, observer: MessageObserver) -> Callable[[], None]:
        """Call ``observer`` for every routed message until the returned function is called."""
        self._message_observers.append(observer)

        def remove() -> None:
            if observer in self._message_observers:
                self._message_observers.remove(observer)

        return remove

    def attach_store(self, stats: Callable[[], StoreStats] | None) -> None:
        """Where ``store_stats`` reads the embedded store's figures (None: persistence is off)."""
        self._store_stats = stats

    def attach_bridges(self, stats: Callable[[], list[BridgeStats]] | None) -> None:
        """Where ``bridges`` reads the bridges' figures (None: no bridge runs)."""
        self._bridge_stats = stats
        self._changed()

    def bridges_changed(self) -> None:
        """A bridge's link came up or went down."""
        self._changed()

    def bridges(self) -> list[BridgeStats]:
        """Each running bridge's state and figures now."""
        return self._bridge_stats() if self._bridge_stats is not None else []

    def store_stats(self) -> StoreStats | None:
        """The embedded store's figures now, or None when nothing is persisted."""
        return self._store_stats() if self._store_stats is not None else None

    @property
    def subscription_index(self) -> SubscriptionIndex:
        """The subscription index: the router writes it (then calls ``subscriptions_changed``),
        the snapshots below read it."""
        return self._index

    def counts(self) -> Counts:
        """Population sizes now."""
        index = self._index
        return Counts(self._connected, len(self._clients), index.filter_count, index.subscription_count)

    def peaks(self) -> Counts:
        """The largest population sizes since start."""
        return Counts(*self._peaks)

    def stats(self) -> Stats:
        """The req 2 counters."""
        return Stats(self._index.session_count, self._message_in, self._message_out, self._message_drop)

    def clients(self) -> list[ClientSnapshot]:
        """Every connected client and every offline persistent session."""
        return [_snapshot(r) for r in self._clients.values()]

    def client(self, client_id: str) -> ClientSnapshot | None:
        """One session, or None."""
        record = self._clients.get(client_id)
        return None if record is None else _snapshot(record)

    def subscriptions(self) -> list[SubscriptionSnapshot]:
        """Every session holding at least one subscription."""
        return [SubscriptionSnapshot(cid, tuple(f.items())) for cid, f in self._index.sessions()]

    def topic_tree(self) -> list[list[TreeNode]]:
        """The subscription tree, breadth first (req 13)."""
        return self._index.levels()

    # -- change notification -----------------------------------------------------------

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every change until the returned function is called (the
        testing support's waits are built on it)."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _update_peaks(self) -> None:
        peaks = self._peaks
        peaks[0] = max(peaks[0], self._connected)
        peaks[1] = max(peaks[1], len(self._clients))
        peaks[2] = max(peaks[2], self._index.filter_count)
        peaks[3] = max(peaks[3], self._index.subscription_count)

    def _changed(self) -> None:
        if not self._listeners:
            return
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("state listener %r failed", listener)


def _snapshot(r: _ClientRecord) -> ClientSnapshot:
    return ClientSnapshot(r.info, r.connected, r.messages_received, r.messages_sent)
