"""JSON shapes both API versions share."""

from __future__ import annotations

from typing import Any

from broker.state import BrokerState

__all__ = ["topic_tree"]


def topic_tree(state: BrokerState, id_key: str) -> list[list[dict[str, Any]]]:
    """The subscription tree level by level; ``id_key`` names the subscribers' list (v1 vs v4)."""
    return [
        [
            {
                "topic": node.topic,
                "cld_cnt": node.child_count,
                **({id_key: list(node.client_ids)} if node.client_ids else {}),
            }
            for node in level
        ]
        for level in state.topic_tree()
    ]
