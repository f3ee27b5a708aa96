"""Topic access control: ordered allow/deny rules in NanoMQ's ACL rule shape (pure, no I/O).

The first rule that matches the client, the action and the topic decides; ``no_match``
decides when none does. ``subscribe`` rules also govern which messages a client receives.
A rule names its clients by ``username``, ``clientid`` and ``ipaddr`` (every one given must
match), plus ``and`` (every term matches) and ``or`` (one term matches); without ``topics`` it
covers every topic. ``${clientid}`` and ``${username}`` in a topic stand for the client's own;
a client whose value cannot stand in a topic level (empty, or holding ``/``, ``+`` or ``#``)
is covered by such a deny rule and never by such an allow rule.

Rules are compiled once per ``Acl`` object (``compile_acl``): filters split into levels,
networks parsed, rules grouped by action; a check then only walks the compiled rules.
"""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from broker.config.settings import Acl, AclCondition, AclRule
from broker.mqtt.topics import levels_match

__all__ = ["Action", "Client", "CompiledAcl", "allowed", "compile_acl"]

Action = Literal["publish", "subscribe", "receive"]

_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ACTIONS: tuple[Action, ...] = ("publish", "subscribe", "receive")
_RULE_ACTIONS: dict[str, frozenset[Action]] = {
    "publish": frozenset({"publish"}),
    "subscribe": frozenset({"subscribe", "receive"}),  # subscribe rules also decide what is received
    "pubsub": frozenset(_ACTIONS),
}
_PLACEHOLDER = re.compile(r"(\$\{clientid\}|\$\{username\})")


@dataclass(frozen=True, slots=True)
class Client:
    """Who asks: the client id, the user name (None if none was given) and the peer address."""

    client_id: str
    username: str | None = None
    address: str | None = None


@lru_cache(maxsize=1024)
def _client_ip(address: str | None) -> _IpAddress | None:
    """The peer's address without its zone, IPv4-mapped IPv6 as IPv4; None if absent or unreadable."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class _Who:
    """One compiled condition: None stands for "any"."""

    username: str | None
    clientid: str | None
    network: _IpNetwork | None

    @classmethod
    def of(cls, condition: AclCondition) -> _Who:
        return cls(
            None if condition.username == "#" else condition.username,
            None if condition.clientid == "#" else condition.clientid,
            None if condition.ipaddr is None else ipaddress.ip_network(condition.ipaddr, strict=False),
        )

    def holds(self, client: Client) -> bool:
        if self.username is not None and self.username != (client.username or ""):
            return False
        if self.clientid is not None and self.clientid != client.client_id:
            return False
        if self.network is None:
            return True
        ip = _client_ip(client.address)
        return ip is not None and ip in self.network


_ANYONE = _Who(None, None, None)


@dataclass(frozen=True, slots=True)
class _Filter:
    """One rule topic split into levels; each level holding a placeholder is also kept as its
    parts (literal text at even positions, placeholder names at odd ones), filled in per check."""

    text: str
    levels: tuple[str, ...]
    templates: tuple[tuple[int, tuple[str, ...]], ...]  # (level index, parts)

    @classmethod
    def of(cls, pattern: str) -> _Filter:
        levels = tuple(pattern.split("/"))
        templates = tuple(
            (index, parts) for index, level in enumerate(levels) if len(parts := tuple(_PLACEHOLDER.split(level))) > 1
        )
        return cls(pattern, levels, templates)

    def placed(self, values: dict[str, str | None]) -> list[str] | None:
        """The levels with the client's values in place; None if one cannot stand there."""
        levels = list(self.levels)
        for index, parts in self.templates:
            if len(parts) == 3 and not parts[0] and not parts[2]:  # the whole level is one placeholder
                value = values[parts[1]]
                if value is None:
                    return None
                levels[index] = value
                continue
            pieces: list[str] = []
            for odd, part in enumerate(parts):
                piece = values[part] if odd % 2 else part
                if piece is None:
                    return None
                pieces.append(piece)
            levels[index] = "".join(pieces)
        return levels


@dataclass(frozen=True, slots=True)
class _Rule:
    allow: bool
    all_of: tuple[_Who, ...]  # the rule's own condition and its "and" terms, those that can fail
    any_of: tuple[_Who, ...]
    filters: tuple[_Filter, ...] | None  # None: every topic

    @classmethod
    def of(cls, rule: AclRule) -> _Rule:
        all_of = tuple(who for who in map(_Who.of, (rule, *rule.all_of)) if who != _ANYONE)
        filters = None if rule.topics is None else tuple(_Filter.of(pattern) for pattern in rule.topics)
        return cls(rule.permit == "allow", all_of, tuple(map(_Who.of, rule.any_of)), filters)

    def applies(self, client: Client) -> bool:
        for term in self.all_of:
            if not term.holds(client):
                return False
        if not self.any_of:
            return True
        return any(term.holds(client) for term in self.any_of)

    def covers(self, topic: str, topic_levels: list[str], values: dict[str, str | None]) -> bool:
        if self.filters is None:
            return True
        for topic_filter in self.filters:
            levels: Sequence[str] = topic_filter.levels
            if topic_filter.templates:
                placed = topic_filter.placed(values)
                if placed is None:
                    if not self.allow:
                        return True  # fail closed: a value that cannot be placed is denied, never allowed
                    continue
                levels = placed
            elif topic_filter.text == topic:
                return True  # a subscription filter equal to the rule's is covered
            # a subscription filter is also covered when the rule's filter matches it as a name; a
            # rule's wildcards cover $ topics too (4.7.2-1 is about routing, not permissions)
            if levels_match(levels, topic_levels):
                return True
        return False


def _placeable(value: str | None) -> str | None:
    """``value`` if it can stand in a topic level; None if it is empty or holds "/", "+" or "#"."""
    return value if value and "/" not in value and "+" not in value and "#" not in value else None


class CompiledAcl:
    """An ``Acl`` ready to check: built once per settings object by ``compile_acl``."""

    __slots__ = ("__weakref__", "_allow_by_default", "_by_action", "_placeholders")

    def __init__(self, acl: Acl) -> None:
        rules = [_Rule.of(rule) for rule in acl.rules]
        self._by_action: dict[str, tuple[_Rule, ...]] = {
            action: tuple(
                compiled
                for compiled, rule in zip(rules, acl.rules, strict=True)
                if action in _RULE_ACTIONS[rule.action]
            )
            for action in _ACTIONS
        }
        self._allow_by_default = acl.no_match == "allow"
        self._placeholders = any(f.templates for rule in rules for f in rule.filters or ())

    def allows(self, client: Client, action: Action, topic: str) -> bool:
        """Whether ``client`` may do ``action`` on ``topic`` (a name or a filter)."""
        rules = self._by_action[action]
        if not rules:
            return self._allow_by_default
        topic_levels = topic.split("/")
        values: dict[str, str | None] = (
            {"${clientid}": _placeable(client.client_id), "${username}": _placeable(client.username)}
            if self._placeholders
            else {}
        )
        for rule in rules:
            if rule.applies(client) and rule.covers(topic, topic_levels, values):
                return rule.allow
        return self._allow_by_default


# id(acl) -> (a weak reference to it, its compiled form); an entry leaves when its Acl is collected
_compiled: dict[int, tuple[weakref.ref[Acl], CompiledAcl]] = {}


def compile_acl(acl: Acl) -> CompiledAcl:
    """``acl`` compiled, once per object: settings are frozen and replaced whole on a change, so
    a new ``Acl`` is compiled at its first check and the old one's entry goes with it."""
    key = id(acl)
    entry = _compiled.get(key)
    if entry is not None and entry[0]() is acl:
        return entry[1]
    compiled = CompiledAcl(acl)

    def forget(ref: weakref.ref[Acl]) -> None:
        if (current := _compiled.get(key)) is not None and current[0] is ref:
            del _compiled[key]

    _compiled[key] = (weakref.ref(acl, forget), compiled)
    return compiled


def allowed(acl: Acl, client: Client, action: Action, topic: str) -> bool:
    """Whether ``client`` may do ``action`` on ``topic`` (a name or a filter)."""
    return compile_acl(acl).allows(client, action, topic)
