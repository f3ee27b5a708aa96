"""Topic access control: ordered allow/deny rules in NanoMQ's ACL rule shape (pure, no I/O).

The first rule that matches the client, the action and the topic decides; ``no_match``
decides when none does. ``subscribe`` rules also govern which messages a client receives.
"""

from __future__ import annotations

from typing import Literal

from broker.settings import Acl, AclRule
from broker.topics import topic_matches

__all__ = ["Action", "allowed"]

Action = Literal["publish", "subscribe", "receive"]


def _covers(rule: AclRule, action: Action, topic: str) -> bool:
    wanted = "subscribe" if action == "receive" else action
    if rule.action not in (wanted, "pubsub"):
        return False
    # a subscription filter is covered when the rule's filter matches it as a name, or equals it
    return any(pattern == topic or topic_matches(pattern, topic) for pattern in rule.topics)


def _applies(rule: AclRule, client_id: str, username: str | None) -> bool:
    if rule.username is not None and rule.username != "#" and rule.username != (username or ""):
        return False
    return rule.clientid is None or rule.clientid in ("#", client_id)


def allowed(acl: Acl, client_id: str, username: str | None, action: Action, topic: str) -> bool:
    """Whether ``client_id`` (``username``) may do ``action`` on ``topic`` (a name or a filter)."""
    for rule in acl.rules:
        if _applies(rule, client_id, username) and _covers(rule, action, topic):
            return rule.permit == "allow"
    return acl.no_match == "allow"
