"""edgemq's amqtt session (broker/amqtt_adapter/session.py): queues made on first use."""

from __future__ import annotations

import pytest

from broker.amqtt_adapter.session import EdgeSession, queue_size


def test_new_session_makes_no_queue() -> None:
    """A session that never queues a message carries no queue (each costs about 2.5 KB)."""
    session = EdgeSession()
    assert queue_size(session, "retained_messages") == 0
    assert queue_size(session, "delivered_message_queue") == 0
    assert "retained_messages" not in vars(session)
    assert "delivered_message_queue" not in vars(session)


def test_offline_queue_is_made_on_first_use_and_cleared() -> None:
    """The offline queue works as amqtt's once used; clearing empties it."""
    session = EdgeSession()
    session.retained_messages.put_nowait("message")
    assert queue_size(session, "retained_messages") == 1
    session.clear_queues()
    assert queue_size(session, "retained_messages") == 0
    assert session.retained_messages.empty()


@pytest.mark.parametrize("used", [False, True])
def test_pickled_state_leaves_queues_out(used: bool) -> None:
    """amqtt's state for pickling has no queues, whether they were made or not."""
    session = EdgeSession()
    session.client_id = "c1"
    if used:
        session.delivered_message_queue.put_nowait("message")
    state = session.__getstate__()
    assert state["client_id"] == "c1"
    assert "retained_messages" not in state
    assert "delivered_message_queue" not in state


def test_unknown_attribute_still_raises() -> None:
    """Only the two queues are made on demand; any other missing attribute is an AttributeError."""
    session = EdgeSession()
    with pytest.raises(AttributeError, match="no_such_attribute"):
        session.no_such_attribute  # noqa: B018
