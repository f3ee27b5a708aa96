"""The subscription index: one table by client, the trie and the counts agree."""

from __future__ import annotations

from broker.mqtt.subscriptions import SubscriptionIndex


def test_repeated_subscribe_replaces_the_qos() -> None:
    """MQTT-3.8.4-3: subscribing again to a filter replaces its QoS; it is counted once."""
    index = SubscriptionIndex()
    index.subscribe("a", "x/+", 0)
    index.subscribe("a", "x/+", 2)
    assert index.match("x/y") == [("a", 2)]
    assert index.filters_of("a") == {"x/+": 2}
    assert (index.subscription_count, index.filter_count, index.session_count) == (1, 1, 1)


def test_unsubscribe_removes_from_every_view() -> None:
    """An unsubscribed filter leaves the trie, the client's filters and the counts."""
    index = SubscriptionIndex()
    index.subscribe("a", "x", 0)
    index.subscribe("b", "x", 1)
    assert index.unsubscribe("a", "x")
    assert not index.unsubscribe("a", "x")
    assert index.match("x") == [("b", 1)]
    assert index.by_filter() == {"x": [("b", 1)]}
    assert (index.subscription_count, index.filter_count, index.session_count) == (1, 1, 1)


def test_drop_client_removes_all_its_subscriptions() -> None:
    """Dropping a session removes each of its filters and leaves other sessions' alone."""
    index = SubscriptionIndex()
    for topic_filter in ("a/#", "b", "c/+"):
        index.subscribe("gone", topic_filter, 1)
    index.subscribe("stays", "b", 0)
    assert index.drop_client("gone") == 3
    assert index.match("b") == [("stays", 0)]
    assert index.match("a/x") == []
    assert [client for client, _ in index.sessions()] == ["stays"]
    assert (index.subscription_count, index.filter_count) == (1, 1)


def test_clear_forgets_everything() -> None:
    """clear leaves an index as new."""
    index = SubscriptionIndex()
    index.subscribe("a", "#", 0)
    index.clear()
    assert index.match("x") == []
    assert (index.subscription_count, index.filter_count, index.session_count) == (0, 0, 0)
    assert index.levels() == SubscriptionIndex().levels()
