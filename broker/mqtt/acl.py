"""Topic access control: ordered allow/deny rules in NanoMQ's ACL rule shape (pure, no I/O).

The first rule that matches the client, the action and the topic decides; ``no_match``
decides when none does. ``subscribe`` rules also govern which messages a client receives.
A rule names its clients by ``username``, ``clientid`` and ``ipaddr`` (every one given must
match), plus ``and`` (every term matches) and ``or`` (one term matches); without ``topics`` it
covers every topic. ``${clientid}`` and ``${username}`` in a topic stand for the client's own;
a client whose value cannot stand in a topic level (empty, or holding ``/``, ``+`` or ``#``)
is covered by such a deny rule and never by such an allow rule.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from broker.config.settings import Acl, AclCondition, AclRule
from broker.mqtt.topics import topic_matches

__all__ = ["Action", "Client", "allowed"]

Action = Literal["publish", "subscribe", "receive"]

_PLACEHOLDERS = ("${clientid}", "${username}")
_NOT_IN_A_LEVEL = ("/", "+", "#")


@dataclass(frozen=True, slots=True)
class Client:
    """Who asks: the client id, the user name (None if none was given) and the peer address."""

    client_id: str
    username: str | None = None
    address: str | None = None


@lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _address_in(address: str | None, network: str) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip in _network(network)


def _is(condition: AclCondition, client: Client) -> bool:
    if condition.username not in (None, "#") and condition.username != (client.username or ""):
        return False
    if condition.clientid not in (None, "#") and condition.clientid != client.client_id:
        return False
    return condition.ipaddr is None or _address_in(client.address, condition.ipaddr)


def _applies(rule: AclRule, client: Client) -> bool:
    return (
        _is(rule, client)
        and all(_is(term, client) for term in rule.all_of)
        and (not rule.any_of or any(_is(term, client) for term in rule.any_of))
    )


def _expanded(pattern: str, client: Client) -> str | None:
    """``pattern`` with the client's values in place of the placeholders; None if one cannot stand there."""
    if "${" not in pattern:
        return pattern
    for placeholder, value in zip(_PLACEHOLDERS, (client.client_id, client.username), strict=True):
        if placeholder in pattern:
            if not value or any(c in value for c in _NOT_IN_A_LEVEL):
                return None
            pattern = pattern.replace(placeholder, value)
    return pattern


def _covers(rule: AclRule, client: Client, action: Action, topic: str) -> bool:
    wanted = "subscribe" if action == "receive" else action
    if rule.action not in (wanted, "pubsub"):
        return False
    if rule.topics is None:
        return True
    for pattern in rule.topics:
        expanded = _expanded(pattern, client)
        if expanded is None:
            if rule.permit == "deny":
                return True  # fail closed: a value that cannot be placed is denied, never allowed
            continue
        # a subscription filter is covered when the rule's filter matches it as a name, or equals
        # it; a rule's wildcards cover $ topics too (4.7.2-1 is about routing, not permissions)
        if expanded == topic or topic_matches(expanded, topic, dollar_rule=False):
            return True
    return False


def allowed(acl: Acl, client: Client, action: Action, topic: str) -> bool:
    """Whether ``client`` may do ``action`` on ``topic`` (a name or a filter)."""
    for rule in acl.rules:
        if _applies(rule, client) and _covers(rule, client, action, topic):
            return rule.permit == "allow"
    return acl.no_match == "allow"
