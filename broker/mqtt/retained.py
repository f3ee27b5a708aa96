"""Retained messages, indexed by topic level (pure, no I/O).

A SUBSCRIBE finds the retained messages its filter matches by walking the filter down the
tree (O(matches), not a match per retained topic), with the routing rules of 4.7: ``+`` one
level, ``#`` the parent level and everything below it, no wildcard at the root of a ``$`` topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.mqtt.message_properties import MessageProperties

__all__ = ["Retained", "RetainedStore"]


@dataclass(frozen=True, slots=True)
class Retained:
    """One retained message."""

    topic: str
    payload: bytes
    qos: int
    properties: MessageProperties | None = None
    """MQTT 5: what the message carries to subscribers (its expiry included)."""


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    message: Retained | None = None


class RetainedStore:
    """The last retained message of each topic."""

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def put(self, topic: str, payload: bytes, qos: int, properties: MessageProperties | None = None) -> None:
        """Keep ``payload`` as ``topic``'s retained message; an empty one deletes it (3.3.1-10)."""
        if not payload:
            self.delete(topic)
            return
        node = self._root
        for level in topic.split("/"):
            node = node.children.setdefault(level, _Node())
        self._count += node.message is None
        node.message = Retained(topic, bytes(payload), qos, properties)

    def delete(self, topic: str) -> bool:
        """Forget ``topic``'s retained message; False if there is none. Empty branches are pruned."""
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.message is None:
            return False
        node.message = None
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.message is not None:
                break
            del parent.children[level]
        return True

    def clear(self) -> None:
        """Forget every retained message."""
        self._root, self._count = _Node(), 0

    def get(self, topic: str) -> Retained | None:
        """``topic``'s retained message, or None."""
        node: _Node | None = self._root
        for level in topic.split("/"):
            node = node.children.get(level) if node is not None else None
        return node.message if node is not None else None

    def all(self) -> list[Retained]:
        """Every retained message."""
        found: list[Retained] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.message is not None:
                found.append(node.message)
            stack.extend(node.children.values())
        return found

    def matching(self, topic_filter: str) -> list[Retained]:
        """The retained messages whose topic ``topic_filter`` matches."""
        levels = topic_filter.split("/")
        last = len(levels)
        found: list[Retained] = []
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == last:
                if node.message is not None:
                    found.append(node.message)
                continue
            level = levels[depth]
            if level == "#":
                found.extend(_below(node, depth == 0))
            elif level == "+":  # pushed last first: popped in the order the topics were retained
                for word, child in reversed(node.children.items()):
                    if not (depth == 0 and word.startswith("$")):
                        stack.append((child, depth + 1))
            elif (exact := node.children.get(level)) is not None:
                stack.append((exact, depth + 1))
        return found


def _below(node: _Node, at_root: bool) -> list[Retained]:
    """``node``'s message and every one below it (``#``), depth first in the order each level's
    topics were retained; at the root, not under ``$`` topics."""
    found: list[Retained] = [node.message] if node.message is not None else []
    stack = [child for word, child in reversed(node.children.items()) if not (at_root and word.startswith("$"))]
    while stack:
        current = stack.pop()
        if current.message is not None:
            found.append(current.message)
        stack.extend(reversed(current.children.values()))
    return found
