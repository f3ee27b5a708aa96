"""The shared state's counters, populations and waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.state import BrokerState, ClientInfo, Stats, TreeNode
from broker.testing.helpers import wait_until


def info(client_id: str) -> ClientInfo:
    return ClientInfo(client_id, "", 60, 4, True, "127.0.0.1", 5000, datetime.now(UTC))


def test_unmatched_message_is_dropped() -> None:
    """A message routed to nobody counts in message_in and message_drop."""
    state = BrokerState()
    state.record_routed(None, [], 0)
    assert state.stats() == Stats(client_size=0, message_in=1, message_out=0, message_drop=1)


def test_routed_copies_count_per_subscription() -> None:
    """Every routed copy counts in message_out and the receiver's message count."""
    state = BrokerState()
    state.record_connected(info("pub"))
    state.record_connected(info("sub"))
    state.record_routed("pub", ["sub", "sub"], 0)
    assert state.stats() == Stats(0, 1, 2, 0)
    sub = state.client("sub")
    pub = state.client("pub")
    assert sub is not None
    assert sub.messages_received == 2
    assert pub is not None
    assert pub.messages_sent == 1


def test_discarded_copies_count_as_drops() -> None:
    """A routed copy that cannot be kept counts in message_out and message_drop."""
    state = BrokerState()
    state.record_routed(None, ["a", "b"], 1)
    assert state.stats() == Stats(0, 1, 2, 1)


def test_client_size_counts_sessions_with_subscriptions() -> None:
    """client_size is the number of sessions holding at least one subscription."""
    state = BrokerState()
    index = state.subscription_index
    index.subscribe("a", "x", 0)
    index.subscribe("a", "y", 1)
    index.subscribe("b", "x", 0)
    index.unsubscribe("b", "x")
    assert state.stats().client_size == 1
    assert [s.client_id for s in state.subscriptions()] == ["a"]


def test_discarded_session_leaves_every_table() -> None:
    """A discarded session leaves the clients, the subscriptions and the topic tree."""
    state = BrokerState()
    state.record_connected(info("a"))
    state.subscription_index.subscribe("a", "x/y", 0)
    state.subscription_index.drop_client("a")
    state.record_session_discarded("a")
    assert state.clients() == []
    assert state.subscriptions() == []
    assert state.subscription_index.match("x/y") == []
    assert state.topic_tree() == [[TreeNode("", 0, ())]]


def test_subscription_change_updates_peaks_and_wakes_listeners() -> None:
    """subscriptions_changed records the peak population and calls every change listener."""
    state = BrokerState()
    calls: list[int] = []
    remove = state.on_change(lambda: calls.append(state.counts().subscribers))
    state.subscription_index.subscribe("a", "x", 0)
    state.subscriptions_changed()
    state.subscription_index.unsubscribe("a", "x")
    state.subscriptions_changed()
    remove()
    state.subscriptions_changed()
    assert calls == [1, 0]
    assert state.peaks().subscribers == 1


def test_reconnect_keeps_counters() -> None:
    """A resumed session keeps its message counters and shows as connected again."""
    state = BrokerState()
    state.record_connected(info("a"))
    state.record_routed(None, ["a"], 0)
    state.record_disconnected("a")
    offline = state.client("a")
    assert offline is not None
    assert not offline.connected
    state.record_connected(info("a"))
    back = state.client("a")
    assert back is not None
    assert back.connected
    assert back.messages_received == 1


@pytest.mark.anyio
async def test_wait_until_returns_when_predicate_holds() -> None:
    """wait_until wakes up on the state change that makes the predicate true."""
    import asyncio

    state = BrokerState()
    waiter = asyncio.create_task(wait_until(state, lambda s: s.stats().message_in == 1, 5))
    await asyncio.sleep(0)  # let the waiter register
    state.record_routed(None, [], 0)
    await waiter


@pytest.mark.anyio
async def test_wait_until_times_out() -> None:
    """wait_until raises TimeoutError when the predicate never holds."""
    state = BrokerState()
    with pytest.raises(TimeoutError):
        await wait_until(state, lambda s: False, 0.01)


def test_client_snapshots_are_hashable_and_format_their_connect_time_once() -> None:
    """Snapshots stay hashable values; the ISO connect time is made on first use and kept."""
    state = BrokerState()
    state.record_connected(info("c1"))
    (snapshot,) = state.clients()
    assert snapshot in {snapshot}
    iso = snapshot.info.connected_at_iso
    assert iso == snapshot.info.connected_at.isoformat()
    assert snapshot.info.connected_at_iso is iso
