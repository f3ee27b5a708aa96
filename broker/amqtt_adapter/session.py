"""Sessions made from a CONNECT: amqtt's Session with a light connection state.

amqtt gives every session a ``transitions.Machine`` (three states, five transitions); building
one costs more than the rest of a connect and several KB per client. ``EdgeSession`` keeps
the part amqtt uses (``transitions.state``, ``connect()``, ``disconnect()``, ``is_*()``) in a
small object, and makes its two asyncio queues (about 2.5 KB each, and used by few sessions:
the offline queue of a persistent session, QoS 2 messages received) on first use.
``connect_refusal`` and ``session_from_connect`` take a CONNECT parsed by
broker/mqtt/framing.py (malformed ones are refused there) instead of amqtt's packet classes.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from typing import Any

from amqtt.adapters import WriterAdapter
from amqtt.broker import RetainedApplicationMessage
from amqtt.mqtt import connack
from amqtt.session import Session
from transitions import MachineError

from broker.config.settings import Mqtt
from broker.mqtt.framing import Connect
from broker.mqtt.http_auth import ClientAccess
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties
from broker.mqtt.v5_session import (
    BAD_AUTHENTICATION_METHOD,
    ServerLimits,
    SubscriptionOptions,
    V5Connect,
    connack_properties,
)
from broker.state import ClientInfo

__all__ = [
    "EdgeSession",
    "QueuedMessage",
    "client_info",
    "connect_refusal",
    "queue_on_first_use",
    "queue_size",
    "server_limits",
    "session_from_connect",
    "v5_connack",
]

_MQTT_31, _MQTT_311, _MQTT_5 = 3, 4, 5  # protocol levels admitted: MQTT 3.1 (older devices), 3.1.1, 5.0


class _ConnectionState:
    """``new`` -> ``connected`` <-> ``disconnected``, with amqtt's enter callbacks."""

    __slots__ = ("_session", "state")

    def __init__(self, session: Session) -> None:
        self._session = weakref.ref(session)  # no cycle: a session ends with its last reference
        self.state = "new"

    def connect(self) -> bool:
        if self.state == "connected":
            raise MachineError('"connect" is not allowed from state "connected"')
        self.state = "connected"
        if (session := self._session()) is not None:
            session._on_enter_connected()
        return True

    def disconnect(self) -> bool:
        self.state = "disconnected"
        if (session := self._session()) is not None:
            session._on_enter_disconnected()
        return True

    def is_new(self) -> bool:
        return self.state == "new"

    def is_connected(self) -> bool:
        return self.state == "connected"

    def is_disconnected(self) -> bool:
        return self.state == "disconnected"


_LAZY_QUEUES = frozenset({"retained_messages", "delivered_message_queue"})
# amqtt's inflight_in/out are OrderedDicts; only plain-dict operations are used on them (and a
# dict keeps insertion order), at half the size and cost.
_FRESH = {"attributes": dict, "inflight_out": dict, "inflight_in": dict}


def _shared_defaults() -> dict[str, Any]:
    """amqtt's Session defaults that instances can share (immutable ones), taken from a Session.

    Raises if amqtt's Session gained an attribute this module does not know how to make, so an
    amqtt upgrade cannot silently leave sessions without it.
    """
    defaults = vars(Session())
    shared = {name: value for name, value in defaults.items() if name not in _FRESH and name not in _LAZY_QUEUES}
    shared.pop("transitions")
    unknown = [name for name, value in shared.items() if not isinstance(value, (type(None), bool, int, str, bytes))]
    if unknown:
        raise TypeError(f"amqtt's Session has attributes EdgeSession does not make: {unknown}")
    return shared


_SHARED = _shared_defaults()


class EdgeSession(Session):
    """amqtt's session without a state machine object per client, its queues made on first use."""

    protocol_level = _MQTT_311
    """The CONNECT's protocol level: 4 (MQTT 3.1.1), 3 (MQTT 3.1, protocol name MQIsdp) or 5."""
    clean_start = True
    """The CONNECT's clean session (3.1.1) or clean start (5.0) flag: an earlier session is discarded.
    ``clean_session`` says whether this session ends with its connection (MQTT 5: expiry 0)."""
    v5: V5Connect | None = None
    """An MQTT 5 connection's terms (None for MQTT 3.1 and 3.1.1)."""
    subscription_options: dict[str, SubscriptionOptions] | None = None
    """MQTT 5 subscriptions' options and identifiers, by filter (only those that have any)."""
    http_access: ClientAccess | None = None
    """What ``auth.http_auth`` said about this connection (set at its CONNECT)."""
    in_store = False
    """The store holds this session (saved persistent, or restored): it is discarded there when it ends."""

    def __init__(self) -> None:  # amqtt's __init__ with the same attributes, queues left out
        self.__dict__.update(_SHARED)
        for name, make in _FRESH.items():
            setattr(self, name, make())
        self.transitions: Any = _ConnectionState(self)

    def __getattr__(self, name: str) -> Any:
        """Make a queue on first use (only called for attributes not set yet)."""
        return queue_on_first_use(self, name, _LAZY_QUEUES)

    def clear_queues(self) -> None:
        """Empty both queues: forget them (the next use makes an empty one)."""
        for name in _LAZY_QUEUES:
            self.__dict__.pop(name, None)

    def __getstate__(self) -> dict[str, Any]:
        for name in _LAZY_QUEUES:
            getattr(self, name)  # amqtt's __getstate__ removes both
        return dict(super().__getstate__())


class QueuedMessage(RetainedApplicationMessage):
    """A copy in an offline session's queue (amqtt's type for it); ``seq`` names its row in the
    store (None: not persisted). MQTT 5: the message's properties and what the subscriptions it
    matched ask (``router5.Matched``)."""

    __slots__ = ("matched", "properties", "seq")

    def __init__(
        self,
        source_session: Session | None,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        seq: int | None,
        properties: MessageProperties | None = None,
        matched: Any = None,
    ) -> None:
        super().__init__(source_session, topic, data, qos)
        self.seq, self.properties, self.matched = seq, properties, matched


def queue_on_first_use(owner: object, name: str, lazy: frozenset[str]) -> asyncio.Queue[Any]:
    """For ``__getattr__``: the asyncio queue ``name`` of ``owner``, made and kept on first use
    if ``name`` is one of the ``lazy`` ones; AttributeError for anything else."""
    if name not in lazy:
        raise AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}")
    queue: asyncio.Queue[Any] = asyncio.Queue()
    setattr(owner, name, queue)
    return queue


def queue_size(session: Session, queue: str) -> int:
    """How many messages one of a session's queues holds, without making it."""
    made = vars(session).get(queue)
    return int(made.qsize()) if made is not None else 0


def connect_refusal(connect: Connect) -> int | None:
    """The CONNACK return code that refuses a well-formed CONNECT, or None to go on (MQTT 5
    clients get the reason code that says the same, see v5_refusal)."""
    if connect.level not in (_MQTT_31, _MQTT_311, _MQTT_5):
        return int(connack.UNACCEPTABLE_PROTOCOL_VERSION)  # 3.1.2-2
    if connect.level == _MQTT_5:  # an empty client id is named by the broker whatever the flags
        method = connect.properties.get("authentication_method") if connect.properties is not None else None
        return BAD_AUTHENTICATION_METHOD if method is not None else None  # no enhanced authentication
    if connect.level == _MQTT_31 and not connect.client_id:
        return int(connack.IDENTIFIER_REJECTED)  # MQTT 3.1 requires a client id (as mosquitto)
    if connect.password is not None and connect.username is None:
        return int(connack.BAD_USERNAME_PASSWORD)  # 3.1.2-22
    if not connect.clean_session and not connect.client_id:
        return int(connack.IDENTIFIER_REJECTED)  # 3.1.3-8: an empty client id needs a clean session
    return None


def session_from_connect(connect: Connect, writer: WriterAdapter) -> EdgeSession:
    """The session an accepted CONNECT asks for (the broker names a client that sent no id)."""
    session = EdgeSession()
    address, port = writer.get_peer_info() or (None, None)
    clean_session = connect.clean_session
    if connect.level == _MQTT_5:
        session.v5 = V5Connect.from_connect(connect)
        clean_session = session.v5.session_expiry == 0  # the session ends with the connection
    session.__dict__.update(
        client_id=connect.client_id,
        clean_start=connect.clean_session,
        clean_session=clean_session,
        will_flag=connect.will_topic is not None,
        will_retain=connect.will_retain,
        will_qos=connect.will_qos,
        will_topic=connect.will_topic,
        will_message=connect.will_message,
        username=connect.username,
        password=connect.password,
        keep_alive=connect.keep_alive,
        protocol_level=connect.level,
        remote_address=address,
        remote_port=port,
        ssl_object=writer.get_ssl_info(),
    )
    return session


def v5_connack(session: Session, limits: Mqtt) -> Properties | None:
    """An MQTT 5 session's CONNACK properties (None for MQTT 3.1.1); a keep alive above
    ``mqtt.max_keepalive`` (or none, when there is a maximum) becomes the maximum (3.2.2.3.14)."""
    terms = session.v5 if isinstance(session, EdgeSession) else None
    if terms is None:
        return None
    if limits.max_keepalive and not 0 < session.keep_alive <= limits.max_keepalive:
        session.keep_alive = terms.server_keep_alive = limits.max_keepalive
    return connack_properties(terms, server_limits(limits), session.client_id)


def server_limits(limits: Mqtt) -> ServerLimits:
    """What the ``mqtt`` settings make the broker tell MQTT 5 clients."""
    return ServerLimits(
        limits.receive_maximum, limits.max_packet_size, limits.topic_alias_maximum, limits.shared_subscriptions
    )


def client_info(session: Session) -> ClientInfo:
    """What the state records of a connected session (an MQTT 5 one's terms too)."""
    will = session.will_flag
    terms = session.v5 if isinstance(session, EdgeSession) else None
    v5 = (
        (terms.session_expiry, terms.receive_maximum, terms.maximum_packet_size or None, terms.topic_alias_maximum)
        if terms is not None
        else ()
    )
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
        *v5,
    )
