"""``Journal``: what the broker persists, as statements for the store, and what it restores.

The MQTT side calls it at the moment state changes: a retained message kept or cleared, a
persistent session made, resumed or discarded, a subscription added or removed, a QoS 1/2
copy queued for a persistent session (and its packet id once it has one, its PUBREC, its final
acknowledgement), a received QoS 2 id kept until PUBREL. Writes of one event-loop turn share one
commit (see ``Store.write``). What one PUBLISH changes is written together (``begin``/``end``,
even across the awaits of routing), so a crash keeps all of it or none: its received QoS 2 id is
never durable without its copies, nor its copies without the id.

Every routed message has a ``seq`` (one per message, shared by its copies); a copy's row is
(client_id, seq). A message's MQTT 5 properties (``MessageProperties``: the forwarded ones and its
expiry) are kept with its retained, session and bridge rows, and read back with them. An MQTT 5
session keeps its Session Expiry Interval and the wall-clock time its connection ended (so the
next start knows how long it has left), its subscriptions their options and identifier. Nothing
here imports amqtt: the adapter turns a ``Snapshot`` into sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.v5_session import SubscriptionOptions
from broker.persistence.store import Statement, Store

__all__ = ["Journal", "Scope", "Snapshot", "StoredForward", "StoredMessage", "StoredSession"]

_PUT_RETAINED = "INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at) VALUES (?, ?, ?, ?, ?)"
_QUEUE = (
    "INSERT OR REPLACE INTO messages (client_id, seq, topic, payload, qos, packet_id, released, properties,"
    " expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)"
)
_SENT = "UPDATE messages SET packet_id = ? WHERE client_id = ? AND seq = ?"
_RELEASED = "UPDATE messages SET released = 1 WHERE client_id = ? AND seq = ?"
_ACKNOWLEDGED = "DELETE FROM messages WHERE client_id = ? AND seq = ?"
_FORWARD = (
    "INSERT OR REPLACE INTO bridge_messages (bridge, seq, topic, payload, qos, retain, properties, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SAVE_SESSION = (
    "INSERT OR REPLACE INTO sessions (client_id, username, protocol, session_expiry, ended_at)"
    " VALUES (?, ?, ?, ?, NULL)"
)
_SUBSCRIBE = (
    "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local, retain_as_published, identifier)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_SESSION_TABLES = ("sessions", "subscriptions", "messages", "incoming_qos2")
# statements over fixed table names (never from input)
_DISCARD = [f"DELETE FROM {table} WHERE client_id = ?" for table in _SESSION_TABLES]  # noqa: S608


class Scope:
    """The writes of one PUBLISH (see ``Journal.begin``), committed together by ``Journal.end``."""

    __slots__ = ("closed", "future", "statements", "token")

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.future: asyncio.Future[None] | None = None  # for writes that want to wait for it
        self.closed = False
        self.token: Token[Scope | None] | None = None


_scope: ContextVar[Scope | None] = ContextVar("edgemq_journal_scope", default=None)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A QoS 1/2 copy not yet acknowledged by its subscriber."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    """Its packet id once it was sent (then resent with DUP=1), None while only queued."""
    released: bool
    """QoS 2: its PUBREC came (the PUBREL is resent, not the PUBLISH)."""
    properties: MessageProperties | None = None
    """Its MQTT 5 properties (None: none)."""


@dataclass(slots=True)
class StoredSession:
    """A persistent session (clean session 0) as it was last committed."""

    client_id: str
    username: str | None
    protocol: int
    subscriptions: list[tuple[str, int]] = field(default_factory=list)
    messages: list[StoredMessage] = field(default_factory=list)
    """In seq order."""
    incoming_qos2: list[int] = field(default_factory=list)
    """Ids of received QoS 2 messages whose PUBREL has not come."""
    subscription_options: dict[str, SubscriptionOptions] = field(default_factory=dict)
    """MQTT 5 options and identifiers of the subscriptions that have any, by filter."""
    session_expiry: int | None = None
    """MQTT 5: its Session Expiry Interval in seconds (None: MQTT 3.1.1, it never expires)."""
    ended_at: float | None = None
    """When (``time.time()``) its last connection ended; None: connected when the broker stopped."""


@dataclass(frozen=True, slots=True)
class StoredForward:
    """A message queued for a bridge's upstream and not acknowledged there yet."""

    seq: int
    topic: str
    """The upstream's topic (mapped already)."""
    payload: bytes
    qos: int
    retain: bool
    properties: MessageProperties | None = None
    """Its MQTT 5 properties (None: none, or a bridge to an MQTT 3.1.1 upstream)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the store holds, read at start-up."""

    retained: list[tuple[str, bytes, int]]
    sessions: list[StoredSession]
    forwards: dict[str, list[StoredForward]] = field(default_factory=dict)
    """Each bridge's queue, in seq order."""
    retained_properties: dict[str, MessageProperties] = field(default_factory=dict)
    """The MQTT 5 properties of the retained messages that carry some, by topic."""

    @property
    def message_count(self) -> int:
        return sum(len(session.messages) for session in self.sessions)


class Journal:
    """Writes the broker's durable state to ``store`` (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next_seq = 1
        self._open: list[Scope] = []  # scopes begun and not ended, oldest first

    # -- writing together -----------------------------------------------------------------

    def begin(self) -> Scope:
        """Collect what this task (and tasks it starts meanwhile) writes until ``end``."""
        scope = Scope()
        scope.token = _scope.set(scope)
        self._open.append(scope)
        return scope

    def end(self, scope: Scope) -> asyncio.Future[None] | None:
        """Write what ``scope`` collected as one batch; the commit to wait for, or None if nothing."""
        scope.closed = True
        if scope.token is not None:
            _scope.reset(scope.token)
        self._open.remove(scope)
        if not scope.statements:
            if scope.future is not None and not scope.future.done():
                scope.future.set_result(None)
            return None
        committed = self.store.write(scope.statements)
        if scope.future is not None:
            committed.add_done_callback(_pass_on(scope.future))
        return committed

    def _write(self, statements: list[Statement], *, now: bool = False) -> asyncio.Future[None]:
        """Write ``statements`` with the current scope's batch, or (outside a scope, or ``now``)
        at once. A write made at once is also added to every open scope, after what the scope
        holds: a scope committed later must not undo it (an acknowledgement's delete, a session's
        discard, a newer retained message; every statement here can be applied twice)."""
        scope = _scope.get()
        if now or scope is None or scope.closed:  # a task started in a scope may write after it ended
            for other in self._open:
                other.statements.extend(statements)
            return self.store.write(statements)
        scope.statements.extend(statements)
        if scope.future is None:
            scope.future = asyncio.get_running_loop().create_future()
            scope.future.add_done_callback(_seen)
        return scope.future

    # -- retained messages --------------------------------------------------------------

    def retain(
        self, topic: str, payload: bytes, qos: int, *, properties: MessageProperties | None = None
    ) -> asyncio.Future[None]:
        """Keep ``topic``'s retained message (an empty payload clears it)."""
        if not payload:  # at once (and in open scopes): the newest retained message wins whatever scope ends last
            return self._write([Statement("DELETE FROM retained WHERE topic = ?", (topic,))], now=True)
        return self._write([Statement(_PUT_RETAINED, (topic, payload, qos, *_columns(properties)))], now=True)

    def clear_retained(self) -> asyncio.Future[None]:
        """Forget every retained message."""
        return self._write([Statement("DELETE FROM retained")])

    # -- sessions -----------------------------------------------------------------------

    def session_saved(
        self, client_id: str, username: str | None, protocol: int, *, expiry: int | None = None
    ) -> asyncio.Future[None]:
        """A persistent session was made or resumed (its username, protocol and MQTT 5 Session
        Expiry Interval may change; None: never expires); it is connected (no end time)."""
        return self._write([Statement(_SAVE_SESSION, (client_id, username, protocol, expiry))])

    def session_offline(self, client_id: str, expiry: int | None, ended_at: float) -> asyncio.Future[None]:
        """A persistent session's connection ended at ``ended_at`` (wall clock), with the
        Session Expiry Interval it had then (its DISCONNECT may have changed it): its time left
        counts from there."""
        sql = "UPDATE sessions SET session_expiry = ?, ended_at = ? WHERE client_id = ?"
        return self._write([Statement(sql, (expiry, ended_at, client_id))])

    def session_discarded(self, client_id: str) -> asyncio.Future[None]:
        """A persistent session ended for good: its subscriptions and queue with it."""
        return self._write([Statement(sql, (client_id,)) for sql in _DISCARD])

    def subscribed(
        self,
        client_id: str,
        filters: Iterable[tuple[str, int]],
        *,
        options: Mapping[str, SubscriptionOptions] | None = None,
    ) -> asyncio.Future[None]:
        """Subscriptions of a persistent session were added (or their QoS or options changed);
        ``options``: the MQTT 5 options by filter (a filter not in it has the defaults)."""
        kept = options or {}
        rows = [(client_id, name, qos, *_option_columns(kept.get(name))) for name, qos in filters]
        return self._write([Statement(_SUBSCRIBE, row) for row in rows])

    def unsubscribed(self, client_id: str, filters: Iterable[str]) -> asyncio.Future[None]:
        """Subscriptions of a persistent session were removed."""
        sql = "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?"
        return self._write([Statement(sql, (client_id, topic_filter)) for topic_filter in filters])

    # -- messages -----------------------------------------------------------------------

    def next_seq(self) -> int:
        """A new message's number (one per routed message, shared by its copies)."""
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    def queued(
        self,
        client_id: str,
        seq: int,
        topic: str,
        payload: bytes,
        qos: int,
        packet_id: int | None = None,
        *,
        properties: MessageProperties | None = None,
    ) -> None:
        """A QoS 1/2 copy for a persistent session was queued (or sent as ``packet_id``)."""
        self._write([Statement(_QUEUE, (client_id, seq, topic, payload, qos, packet_id, *_columns(properties)))])

    def sent(self, client_id: str, seq: int, packet_id: int) -> asyncio.Future[None]:
        """A queued copy was given ``packet_id`` (a QoS 2 one is sent only once this is durable)."""
        return self._write([Statement(_SENT, (packet_id, client_id, seq))])

    def released(self, client_id: str, seq: int) -> asyncio.Future[None]:
        """A QoS 2 copy's PUBREC came: its PUBREL, not its PUBLISH, is what is resent."""
        return self._write([Statement(_RELEASED, (client_id, seq))])

    def acknowledged(self, client_id: str, seq: int) -> None:
        """A copy's PUBACK or PUBCOMP came: it is done."""
        self._write([Statement(_ACKNOWLEDGED, (client_id, seq))])

    def forward_queued(
        self,
        bridge: str,
        seq: int,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        *,
        properties: MessageProperties | None = None,
    ) -> asyncio.Future[None]:
        """A QoS 1/2 message was queued for a bridge's upstream; the commit that holds its row."""
        columns = (bridge, seq, topic, payload, qos, int(retain), *_columns(properties))
        return self._write([Statement(_FORWARD, columns)])

    def forward_acknowledged(self, bridge: str, seq: int) -> None:
        """The upstream acknowledged a forwarded message (PUBACK, PUBCOMP), or it was dropped."""
        self._write([Statement("DELETE FROM bridge_messages WHERE bridge = ? AND seq = ?", (bridge, seq))])

    def incoming(self, client_id: str, packet_id: int) -> None:
        """A QoS 2 PUBLISH from a persistent session was routed; its id is kept until PUBREL."""
        self._write([Statement("INSERT OR REPLACE INTO incoming_qos2 VALUES (?, ?)", (client_id, packet_id))])

    def incoming_released(self, client_id: str, packet_id: int) -> asyncio.Future[None]:
        """The PUBREL came: the id may be used again (so PUBCOMP waits for this)."""
        sql = "DELETE FROM incoming_qos2 WHERE client_id = ? AND packet_id = ?"
        return self._write([Statement(sql, (client_id, packet_id))])

    # -- start-up -----------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything committed, read before any write (start-up)."""
        read = self.store.read
        sessions = {
            client_id: StoredSession(client_id, username, protocol, session_expiry=expiry, ended_at=ended_at)
            for client_id, username, protocol, expiry, ended_at in read(
                "SELECT client_id, username, protocol, session_expiry, ended_at FROM sessions"
            )
        }
        rows = read("SELECT client_id, filter, qos, no_local, retain_as_published, identifier FROM subscriptions")
        for client_id, topic_filter, qos, no_local, retain_as_published, identifier in rows:
            if (session := sessions.get(client_id)) is not None:
                session.subscriptions.append((topic_filter, qos))
                kept = SubscriptionOptions(bool(no_local), bool(retain_as_published), identifier)
                if kept != SubscriptionOptions():
                    session.subscription_options[topic_filter] = kept
        last_seq = 0
        rows = read(
            "SELECT client_id, seq, topic, payload, qos, packet_id, released, properties, expires_at"
            " FROM messages ORDER BY seq"
        )
        for client_id, seq, topic, payload, qos, packet_id, released, forwarded, expires_at in rows:
            last_seq = max(last_seq, seq)
            if (session := sessions.get(client_id)) is not None:
                properties = _properties(forwarded, expires_at)
                message = StoredMessage(seq, topic, bytes(payload), qos, packet_id, bool(released), properties)
                session.messages.append(message)
        for client_id, packet_id in read("SELECT client_id, packet_id FROM incoming_qos2"):
            if (session := sessions.get(client_id)) is not None:
                session.incoming_qos2.append(packet_id)
        forwards: dict[str, list[StoredForward]] = {}
        rows = read(
            "SELECT bridge, seq, topic, payload, qos, retain, properties, expires_at FROM bridge_messages ORDER BY seq"
        )
        for bridge, seq, topic, payload, qos, retain, forwarded, expires_at in rows:
            last_seq = max(last_seq, seq)
            stored = StoredForward(seq, topic, bytes(payload), qos, bool(retain), _properties(forwarded, expires_at))
            forwards.setdefault(bridge, []).append(stored)
        self._next_seq = last_seq + 1
        retained: list[tuple[str, bytes, int]] = []
        retained_properties: dict[str, MessageProperties] = {}
        for topic, payload, qos, forwarded, expires_at in read(
            "SELECT topic, payload, qos, properties, expires_at FROM retained"
        ):
            retained.append((topic, bytes(payload), qos))
            if (properties := _properties(forwarded, expires_at)) is not None:
                retained_properties[topic] = properties
        return Snapshot(retained, list(sessions.values()), forwards, retained_properties)


def _columns(properties: MessageProperties | None) -> tuple[bytes | None, float | None]:
    """The ``properties`` and ``expires_at`` columns of a message's row (NULL: none)."""
    if properties is None:
        return None, None
    return properties.forwarded or None, properties.expires_at


def _option_columns(options: SubscriptionOptions | None) -> tuple[int, int, int | None]:
    """The ``no_local``, ``retain_as_published`` and ``identifier`` columns of a subscription's row."""
    if options is None:
        return 0, 0, None
    return int(options.no_local), int(options.retain_as_published), options.identifier


def _properties(forwarded: bytes | None, expires_at: float | None) -> MessageProperties | None:
    """A row's MQTT 5 properties, None when it has none."""
    if forwarded is None and expires_at is None:
        return None
    return MessageProperties(bytes(forwarded or b""), expires_at)


def _seen(done: asyncio.Future[None]) -> None:
    """Mark a failure as seen (the store logged it) when nobody awaits the future."""
    if not done.cancelled():
        done.exception()


def _pass_on(target: asyncio.Future[None]) -> Callable[[asyncio.Future[None]], None]:
    """A done callback settling ``target`` as the future it is added to settled."""

    def settle(done: asyncio.Future[None]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif (error := done.exception()) is not None:
            target.set_exception(error)
        else:
            target.set_result(None)

    return settle
