"""Shared subscriptions (``$share/<group>/<filter>``, MQTT 5.0 section 4.8.2, offered to MQTT 3.1.1
clients too, as mosquitto does): each message matching a group's filter goes to one member of
the group, in turn (pure, no I/O).

A group is one share name with one filter; its members are the sessions subscribed to exactly
``$share/<name>/<filter>``. The router picks the member: the next connected one in round-robin
order, else the next member at all (an offline persistent session then queues it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from broker.mqtt.topics import TopicTree

__all__ = ["SHARE_PREFIX", "SharedGroup", "SharedGroups", "split_shared"]

SHARE_PREFIX = "$share/"


def split_shared(topic_filter: str) -> tuple[str, str] | None:
    """``(share name, filter)`` of a shared subscription's filter; None for any other filter.

    ValueError for a malformed one (MQTT-4.8.2-1/2: a share name of at least one character
    without ``/``, ``+`` or ``#``, followed by ``/`` and a non-empty filter)."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    name, slash, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not name or "+" in name or "#" in name or not slash or not inner:
        raise ValueError(f"malformed shared subscription {topic_filter!r}")
    return name, inner


@dataclass(slots=True)
class SharedGroup:
    """The members of one share name on one filter, with their granted QoS, in joining order."""

    members: dict[str, int] = field(default_factory=dict)
    turn: int = 0  # where the next round-robin pick starts

    def pick(self, connected: Callable[[str], bool]) -> tuple[str, int] | None:
        """The member whose turn it is: the next connected one, else the next one at all."""
        members = list(self.members.items())
        if not members:
            return None
        count = len(members)
        start = self.turn % count
        chosen = next((i % count for i in range(start, start + count) if connected(members[i % count][0])), start)
        self.turn = chosen + 1
        return members[chosen]


def _key(name: str, topic_filter: str) -> str:
    return f"{name}\x00{topic_filter}"  # NUL cannot occur in a share name or a filter


class SharedGroups:
    """Every shared subscription: groups by (share name, filter), and a trie of their filters."""

    def __init__(self) -> None:
        self._groups: dict[str, SharedGroup] = {}  # by _key(name, filter)
        self._tree = TopicTree()  # filter -> the keys of its groups

    def __bool__(self) -> bool:
        return bool(self._groups)

    def join(self, name: str, topic_filter: str, client_id: str, qos: int) -> None:
        """Add a member (or change its QoS)."""
        key = _key(name, topic_filter)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = SharedGroup()
            self._tree.subscribe(topic_filter, key, 0)
        group.members[client_id] = qos

    def leave(self, name: str, topic_filter: str, client_id: str) -> None:
        """Remove a member; a group left empty goes."""
        key = _key(name, topic_filter)
        group = self._groups.get(key)
        if group is None or group.members.pop(client_id, None) is None:
            return
        if not group.members:
            del self._groups[key]
            self._tree.unsubscribe(topic_filter, key)

    def targets(self, topic: str, connected: Callable[[str], bool]) -> list[tuple[str, int]]:
        """``(client_id, granted qos)``: one member of every group whose filter matches ``topic``."""
        found: list[tuple[str, int]] = []
        for key, _ in self._tree.match(topic):
            picked = self._groups[key].pick(connected)
            if picked is not None:
                found.append(picked)
        return found

    def successor(
        self, name: str, topic_filter: str, leaving: str, connected: Callable[[str], bool]
    ) -> tuple[str, int] | None:
        """The member of a group that takes over what ``leaving`` had in flight: the next one
        whose turn it is, other than ``leaving``; None when it was alone."""
        group = self._groups.get(_key(name, topic_filter))
        if group is None:
            return None
        for _ in range(len(group.members)):
            picked = group.pick(connected)
            if picked is not None and picked[0] != leaving:
                return picked
        return None

    def clear(self) -> None:
        """Forget every group."""
        self._groups.clear()
        self._tree = TopicTree()
