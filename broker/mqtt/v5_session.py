"""What an MQTT 5 client asked for in its CONNECT, and what the broker answers in its CONNACK
(pure, no I/O; OASIS MQTT 5.0 3.1.2.11 and 3.2.2.3)."""

from __future__ import annotations

from dataclasses import dataclass

from broker.mqtt.framing import Connect
from broker.mqtt.properties import Properties

__all__ = [
    "BAD_AUTHENTICATION_METHOD",
    "NEVER_EXPIRES",
    "ServerLimits",
    "SubscriptionOptions",
    "V5Connect",
    "connack_properties",
    "v5_refusal",
]

NEVER_EXPIRES = 0xFFFFFFFF
"""A Session Expiry Interval that never ends (3.1.2.11.2)."""
_V5_REFUSALS = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}
"""MQTT 3.1.1 CONNACK return codes and the MQTT 5 reason codes that say the same (3.2.2.2)."""
BAD_AUTHENTICATION_METHOD = 0x8C


def v5_refusal(code: int) -> int:
    """The MQTT 5 CONNACK reason code for a 3.1.1 return code (or an MQTT 5 code, unchanged)."""
    return _V5_REFUSALS.get(code, code)


@dataclass(slots=True)
class V5Connect:
    """An MQTT 5 connection's terms: what the client asked for (defaults: the standard's)."""

    session_expiry: int = 0
    receive_maximum: int = 65535
    """How many QoS 1/2 PUBLISHes the client takes unacknowledged (3.1.2.11.3)."""
    maximum_packet_size: int = 0
    """The largest packet the client takes; 0: no limit but the protocol's (3.1.2.11.4)."""
    topic_alias_maximum: int = 0
    """Topic aliases the client takes from the broker (which sends none)."""
    request_problem_information: bool = True
    will_delay: int = 0
    will_properties: Properties | None = None
    """The will's properties as sent; what travels with it is taken when it is published, so its
    Message Expiry Interval starts then (3.1.3.2.4)."""
    authentication_method: str | None = None
    assigned_client_id: bool = False
    """The broker named the client (it sent an empty client id): the CONNACK says the name."""
    server_keep_alive: int | None = None
    """The keep alive the broker imposes (3.2.2.3.14), when it differs from the client's."""

    @classmethod
    def from_connect(cls, connect: Connect) -> V5Connect:
        values = connect.properties.values if connect.properties is not None else {}
        will = connect.will_properties
        terms = cls(
            session_expiry=int(values.get("session_expiry_interval", 0)),
            receive_maximum=int(values.get("receive_maximum", 65535)),
            maximum_packet_size=int(values.get("maximum_packet_size", 0)),
            topic_alias_maximum=int(values.get("topic_alias_maximum", 0)),
            request_problem_information=bool(values.get("request_problem_information", 1)),
            authentication_method=_text(values.get("authentication_method")),
        )
        if will is not None:
            terms.will_delay = int(will.values.get("will_delay_interval", 0))
            terms.will_properties = will
        return terms


def _text(value: int | str | bytes | None) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """An MQTT 5 subscription's options beyond its QoS (3.8.3.1) and its identifier (3.8.2.1.2);
    kept only for subscriptions that have any."""

    no_local: bool = False
    retain_as_published: bool = False
    identifier: int | None = None


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the broker tells every MQTT 5 client in its CONNACK (from the ``mqtt`` settings)."""

    receive_maximum: int
    maximum_packet_size: int
    topic_alias_maximum: int
    shared_subscriptions: bool


def connack_properties(terms: V5Connect, limits: ServerLimits, client_id: str) -> Properties:
    """The properties of an accepting CONNACK (3.2.2.3): only what differs from the defaults."""
    values: dict[str, int | str | bytes] = {"maximum_packet_size": limits.maximum_packet_size}
    if limits.receive_maximum < 65535:
        values["receive_maximum"] = limits.receive_maximum
    if limits.topic_alias_maximum:
        values["topic_alias_maximum"] = limits.topic_alias_maximum
    if not limits.shared_subscriptions:
        values["shared_subscription_available"] = 0
    if terms.assigned_client_id:
        values["assigned_client_identifier"] = client_id
    if terms.server_keep_alive is not None:
        values["server_keep_alive"] = terms.server_keep_alive
    return Properties(values)
