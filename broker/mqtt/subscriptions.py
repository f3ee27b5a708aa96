"""The broker's one subscription table (pure, no I/O).

Each session's filters with their granted QoS, in subscription order, and the topic trie
routing reads; the router is its only writer, the shared state and the admin API read it.
Shared subscriptions (``$share/<name>/<filter>``) are listed like the others under their whole
filter and routed through their groups (broker/mqtt/shared.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from broker.mqtt.shared import SharedGroups, split_shared
from broker.mqtt.topics import TopicTree, TreeNode

__all__ = ["SubscriptionIndex"]


class SubscriptionIndex:
    """Subscriptions by client and by topic filter level."""

    def __init__(self) -> None:
        self._by_client: dict[str, dict[str, int]] = {}
        self._tree = TopicTree()
        self._filter_refs: dict[str, int] = {}  # filter -> sessions holding it
        self._count = 0
        self.shared = SharedGroups()
        """The shared subscriptions' groups (routing picks one member of each matching group)."""

    def clear(self) -> None:
        """Forget every subscription."""
        self._by_client, self._tree, self._filter_refs, self._count = {}, TopicTree(), {}, 0
        self.shared.clear()

    def subscribe(self, client_id: str, topic_filter: str, qos: int) -> None:
        """Add a subscription, or replace its QoS if the client holds the filter (MQTT-3.8.4-3)."""
        filters = self._by_client.setdefault(client_id, {})
        if topic_filter not in filters:
            self._filter_refs[topic_filter] = self._filter_refs.get(topic_filter, 0) + 1
            self._count += 1
        filters[topic_filter] = qos
        shared = split_shared(topic_filter)
        if shared is None:
            self._tree.subscribe(topic_filter, client_id, qos)
        else:
            self.shared.join(*shared, client_id, qos)

    def unsubscribe(self, client_id: str, topic_filter: str) -> bool:
        """Remove one subscription; False if the client does not hold the filter."""
        filters = self._by_client.get(client_id)
        if filters is None or filters.pop(topic_filter, None) is None:
            return False
        if not filters:
            del self._by_client[client_id]
        self._forget(topic_filter, client_id)
        return True

    def drop_client(self, client_id: str) -> int:
        """Remove every subscription of a session; how many there were."""
        filters = self._by_client.pop(client_id, {})
        for topic_filter in filters:
            self._forget(topic_filter, client_id)
        return len(filters)

    def _forget(self, topic_filter: str, client_id: str) -> None:
        shared = split_shared(topic_filter)
        if shared is None:
            self._tree.unsubscribe(topic_filter, client_id)
        else:
            self.shared.leave(*shared, client_id)
        self._count -= 1
        refs = self._filter_refs[topic_filter] - 1
        if refs:
            self._filter_refs[topic_filter] = refs
        else:
            del self._filter_refs[topic_filter]

    def match(self, topic: str) -> list[tuple[str, int]]:
        """``(client_id, granted qos)`` for every plain subscription matching ``topic`` (shared
        ones: ``shared.targets``)."""
        return self._tree.match(topic)

    def filters_of(self, client_id: str) -> dict[str, int]:
        """One session's filters and granted QoS, in subscription order (a copy)."""
        return dict(self._by_client.get(client_id, ()))

    def sessions(self) -> Iterator[tuple[str, dict[str, int]]]:
        """Every session holding a subscription, with its filters (read only)."""
        return iter(self._by_client.items())

    def by_filter(self) -> dict[str, list[tuple[str, int]]]:
        """Every filter with its ``(client_id, qos)`` holders: amqtt's table's shape, made on request."""
        table: dict[str, list[tuple[str, int]]] = {}
        for client_id, filters in self._by_client.items():
            for topic_filter, qos in filters.items():
                table.setdefault(topic_filter, []).append((client_id, qos))
        return table

    def levels(self) -> list[list[TreeNode]]:
        """The trie breadth first (req 13)."""
        return self._tree.levels()

    @property
    def session_count(self) -> int:
        """Sessions holding at least one subscription."""
        return len(self._by_client)

    @property
    def filter_count(self) -> int:
        """Distinct topic filters subscribed to."""
        return len(self._filter_refs)

    @property
    def subscription_count(self) -> int:
        """(client, filter) pairs."""
        return self._count
