"""Sessions made from a CONNECT: amqtt's Session with a light connection state.

amqtt gives every session a ``transitions.Machine`` (three states, five transitions); building
one costs more than the rest of a connect and several KB per client. ``EdgeSession`` keeps
the part amqtt uses (``transitions.state``, ``connect()``, ``disconnect()``, ``is_*()``) in a
small object. ``session_from_connect`` applies the CONNECT rules of MQTT 3.1.1 that amqtt's
``init_from_connect`` applies (``malformed_connect``, ``connect_refusal``), and builds an
``EdgeSession``.
"""

from __future__ import annotations

import weakref
from typing import Any

from amqtt.adapters import WriterAdapter
from amqtt.mqtt import connack
from amqtt.mqtt.connect import ConnectPacket
from amqtt.session import Session
from transitions import MachineError

__all__ = ["EdgeSession", "connect_refusal", "malformed_connect", "session_from_connect"]

_SUPPORTED_LEVEL = 4  # MQTT 3.1.1


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


class EdgeSession(Session):
    """amqtt's session without a state machine object per client."""

    def _init_states(self) -> None:
        self.transitions: Any = _ConnectionState(self)


def malformed_connect(connect: ConnectPacket) -> str | None:
    """Why a CONNECT cannot be answered at all (the connection is closed), or None."""
    if connect.variable_header is None or connect.payload is None or connect.payload.client_id is None:
        return "CONNECT without its variable header or client identifier (3.1.3-3)"
    if connect.will_flag and (connect.will_topic is None or connect.will_message is None):
        return "CONNECT with the will flag but no will topic or message (3.1.2-9)"
    if connect.variable_header.reserved_flag:
        return "CONNECT with the reserved flag set (3.1.2-3)"
    if connect.proto_name != "MQTT":
        return f"CONNECT with protocol name {connect.proto_name!r} (3.1.2-1)"
    return None


def connect_refusal(connect: ConnectPacket) -> int | None:
    """The CONNACK return code that refuses a well-formed CONNECT, or None to go on."""
    if connect.proto_level != _SUPPORTED_LEVEL:
        return int(connack.UNACCEPTABLE_PROTOCOL_VERSION)  # 3.1.2-2
    if connect.password_flag and not connect.username_flag:
        return int(connack.BAD_USERNAME_PASSWORD)  # 3.1.2-22
    if (connect.username_flag and connect.username is None) or (connect.password_flag and connect.password is None):
        return int(connack.BAD_USERNAME_PASSWORD)
    if not connect.clean_session_flag and connect.payload is not None and connect.payload.client_id_is_random:
        return int(connack.IDENTIFIER_REJECTED)  # 3.1.3-8: an empty client id needs a clean session
    return None


def session_from_connect(connect: ConnectPacket, writer: WriterAdapter) -> EdgeSession:
    """The session an accepted CONNECT asks for."""
    session = EdgeSession()
    session.client_id = connect.client_id
    session.clean_session = connect.clean_session_flag
    session.will_flag = connect.will_flag
    session.will_retain = connect.will_retain_flag
    session.will_qos = connect.will_qos
    session.will_topic = connect.will_topic
    session.will_message = connect.will_message
    session.username = connect.username
    session.password = connect.password
    session.keep_alive = max(connect.keep_alive, 0)
    peer = writer.get_peer_info()
    if peer is not None:
        session.remote_address, session.remote_port = peer
    session.ssl_object = writer.get_ssl_info()
    return session
