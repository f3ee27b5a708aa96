"""JSON shapes both API versions share."""

from __future__ import annotations

from typing import Any

from broker.state import BrokerState, ClientInfo

__all__ = ["mqtt5_fields", "topic_tree"]

MQTT5 = 5


def mqtt5_fields(info: ClientInfo) -> dict[str, Any]:
    """The MQTT 5 settings of a client's connection (extension fields of v1 req 5 and v4 client
    objects), for MQTT 5 clients only: NanoMQ's client objects carry none, so a 3.1.x client's
    object stays exactly NanoMQ's, and a v5 client's adds only what it really set."""
    if info.protocol != MQTT5:
        return {}
    return {
        "session_expiry_interval": info.session_expiry_interval,
        "receive_maximum": info.receive_maximum,
        "maximum_packet_size": info.maximum_packet_size,
        "topic_alias_maximum": info.topic_alias_maximum,
    }


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
