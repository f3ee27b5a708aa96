"""Topic filter trie: subscription matching and the topic tree (pure, no I/O).

MQTT 3.1.1 rules (section 4.7): levels are split on ``/``; ``+`` matches exactly one level,
``#`` matches the parent level and any number of child levels and must be last; filters that
start with a wildcard do not match topic names that start with ``$`` (4.7.2-1), so a message
published to ``$app/x`` reaches ``$app/#`` but never ``#`` or ``+/x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One node of the topic tree as the admin API shows it."""

    topic: str
    child_count: int
    client_ids: tuple[str, ...]


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    # client id -> granted QoS, in subscription order
    subscribers: dict[str, int] = field(default_factory=dict)


MAX_TOPIC_BYTES = 65_535  # a UTF-8 string's length field is two bytes (1.5.3)


def is_valid_topic_name(topic: str) -> bool:
    """Whether ``topic`` may be published to (1.5.3, 4.7): 1 to 65 535 bytes of UTF-8 (no lone
    surrogates), no U+0000, no wildcards."""
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        return False
    if topic.isascii():
        return len(topic) <= MAX_TOPIC_BYTES
    try:
        return len(topic.encode("utf-8")) <= MAX_TOPIC_BYTES
    except UnicodeEncodeError:  # a lone surrogate, which only a JSON "\ud800" escape can produce
        return False


def is_system_topic(topic: str) -> bool:
    """Whether ``topic`` is under ``$SYS``, the broker's own: what clients publish there is discarded."""
    return topic.startswith("$SYS") and (len(topic) == 4 or topic[4] == "/")


class TopicTree:
    """Subscriptions indexed by filter level; a lookup costs O(levels), not O(filters)."""

    def __init__(self) -> None:
        self._root = _Node()

    def subscribe(self, topic_filter: str, client_id: str, qos: int) -> None:
        """Add or replace the subscription of ``client_id`` on ``topic_filter``."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        node.subscribers[client_id] = qos

    def unsubscribe(self, topic_filter: str, client_id: str) -> bool:
        """Remove one subscription; return whether it existed. Empty branches are pruned."""
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.subscribers.pop(client_id, None) is None:
            return False
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.subscribers:
                break
            del parent.children[level]
        return True

    def match(self, topic: str, *, dollar_rule: bool = True) -> list[tuple[str, int]]:
        """Every subscription matching ``topic``: one ``(client_id, qos)`` per matching filter;
        ``dollar_rule=False`` lets wildcards at the root match ``$`` topics too (ACL rules).

        Iterative (an explicit stack), so a filter thousands of levels deep costs time in
        proportion to its depth and never Python's recursion limit."""
        levels = topic.split("/")
        depth_end = len(levels)
        dollar = dollar_rule and topic.startswith("$")
        found: list[tuple[str, int]] = []
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            wildcards_allowed = not (dollar and depth == 0)  # 4.7.2-1: no wildcard at a $ topic's root
            children = node.children
            if wildcards_allowed and (hash_node := children.get("#")) is not None:
                found.extend(hash_node.subscribers.items())
            if depth == depth_end:
                found.extend(node.subscribers.items())
                continue
            if wildcards_allowed and (plus := children.get("+")) is not None:
                stack.append((plus, depth + 1))
            if (exact := children.get(levels[depth])) is not None:
                stack.append((exact, depth + 1))  # popped first: exact matches before "+" ones
        return found

    def levels(self) -> list[list[TreeNode]]:
        """The tree breadth first: level 0 is the unnamed root, then one list per depth."""
        result: list[list[TreeNode]] = [[TreeNode("", len(self._root.children), ())]]
        current = list(self._root.children.items())
        while current:
            result.append([_tree_node(word, node) for word, node in current])
            current = [item for _, node in current for item in node.children.items()]
        return result


def _tree_node(word: str, node: _Node) -> TreeNode:
    return TreeNode(word, len(node.children), tuple(node.subscribers))


def topic_matches(topic_filter: str, topic: str, *, dollar_rule: bool = True) -> bool:
    """Whether one filter matches one topic name (for helpers and the ACL; routing uses the
    tree). With ``dollar_rule=False`` a filter starting with a wildcard also matches ``$`` topics:
    an ACL rule on ``#`` covers every topic a client may use."""
    return levels_match(
        topic_filter.split("/"), topic.split("/"), root_wildcards=not (dollar_rule and topic.startswith("$"))
    )


def levels_match(filter_levels: Sequence[str], topic_levels: Sequence[str], *, root_wildcards: bool = True) -> bool:
    """Whether a filter split into levels matches a topic name split into levels, level by level,
    exactly as ``TopicTree.match`` does for one filter: ``+`` is one level, ``#`` as the last
    level matches the parent and any children, and elsewhere ``#`` (or a wildcard at the root
    when ``root_wildcards`` is False) only matches itself as a literal level."""
    last = len(filter_levels) - 1
    depth_end = len(topic_levels)
    for depth, level in enumerate(filter_levels):
        wildcard = root_wildcards or depth > 0
        if level == "#" and depth == last and wildcard:
            return True
        if depth == depth_end:
            return False
        if level != topic_levels[depth] and not (level == "+" and wildcard):
            return False
    return last + 1 == depth_end
