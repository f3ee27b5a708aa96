"""The journal's batches on a real store: what a PUBLISH writes together, and what others write meanwhile."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.v5_session import SubscriptionOptions
from broker.persistence.journal import Journal, Snapshot
from broker.persistence.store import Store

pytestmark = pytest.mark.anyio


@contextmanager
def journal_on(path: Path) -> Iterator[Journal]:
    store = Store.open(path)
    try:
        yield Journal(store)
    finally:
        store.close()


def reread(path: Path) -> Snapshot:
    with journal_on(path) as journal:
        return journal.load()


async def elsewhere(write: object) -> None:
    """Run ``write`` (a coroutine) in a task of its own, outside the caller's scope."""
    await asyncio.get_running_loop().create_task(write, context=contextvars.Context())  # type: ignore[arg-type]


async def test_an_acknowledgement_during_an_open_scope_is_not_undone_by_it(tmp_path: Path) -> None:
    """A copy acknowledged while the PUBLISH that queued it is still routing leaves no row."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        await journal.session_saved("sub", None, 4)
        scope = journal.begin()
        seq = journal.next_seq()
        journal.queued("sub", seq, "t", b"x", 1, packet_id=1)  # sent at once through the outbox

        async def puback() -> None:
            journal.acknowledged("sub", seq)

        await elsewhere(puback())  # the subscriber's PUBACK, read before the PUBLISH's batch ends
        committed = journal.end(scope)
        assert committed is not None
        await committed
    assert reread(path).sessions[0].messages == []


async def test_the_newest_retained_message_wins_whatever_scope_ends_last(tmp_path: Path) -> None:
    """Two retained PUBLISHes on one topic: the store keeps the later one even if the earlier batch ends last."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        first = journal.begin()
        journal.retain("t", b"old", 1)

        async def second_publisher() -> None:
            scope = journal.begin()
            journal.retain("t", b"new", 1)
            committed = journal.end(scope)
            assert committed is not None
            await committed

        await elsewhere(second_publisher())
        committed = journal.end(first)
        assert committed is not None
        await committed
    assert reread(path).retained == [("t", b"new", 1)]


async def test_a_discard_during_an_open_scope_removes_the_rows_that_scope_queued(tmp_path: Path) -> None:
    """A session discarded while a PUBLISH queuing a copy for it is routing leaves none of its rows."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        await journal.session_saved("gone", None, 4)
        scope = journal.begin()
        journal.queued("gone", journal.next_seq(), "t", b"x", 1)

        async def discard() -> None:  # a clean CONNECT with its id, in that client's task
            await journal.session_discarded("gone")

        await elsewhere(discard())
        committed = journal.end(scope)
        assert committed is not None
        await committed
        rows = journal.store.read("SELECT count(*) FROM messages")
    assert rows == [(0,)]


async def test_a_scope_that_wrote_nothing_settles_what_waits_on_it(tmp_path: Path) -> None:
    """Ending a scope with nothing to write settles a future handed out within it."""
    with journal_on(tmp_path / "s.db") as journal:
        scope = journal.begin()
        waiting = journal.subscribed("c", [])  # no statement
        assert journal.end(scope) is None
        await asyncio.wait_for(waiting, 1)


PROPERTIES = MessageProperties(b"\x03\x00\x04text&\x00\x01k\x00\x01v", 1_900_000_000.5)
"""A content type, a user property and an expiry."""


async def test_a_retained_message_keeps_its_properties(tmp_path: Path) -> None:
    """A retained message written with MQTT 5 properties is read back with them; one without, without."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        journal.retain("with", b"x", 1, properties=PROPERTIES)
        await journal.retain("without", b"y", 0)
    snapshot = reread(path)
    assert sorted(snapshot.retained) == [("with", b"x", 1), ("without", b"y", 0)]
    assert snapshot.retained_properties == {"with": PROPERTIES}


async def test_a_session_copy_keeps_its_properties(tmp_path: Path) -> None:
    """A queued copy and an in-flight copy keep their properties; a copy without has None."""
    path = tmp_path / "s.db"
    expiring = MessageProperties(b"", 1_900_000_001.0)  # an expiry alone
    with journal_on(path) as journal:
        await journal.session_saved("c", None, 5)
        journal.queued("c", journal.next_seq(), "a", b"1", 1, properties=PROPERTIES)
        journal.queued("c", journal.next_seq(), "b", b"2", 2, packet_id=9, properties=expiring)
        journal.queued("c", journal.next_seq(), "c", b"3", 1)
        await journal.store.write([])
    (session,) = reread(path).sessions
    assert [(m.topic, m.packet_id, m.properties) for m in session.messages] == [
        ("a", None, PROPERTIES),
        ("b", 9, expiring),
        ("c", None, None),
    ]


async def test_a_bridge_row_keeps_its_properties(tmp_path: Path) -> None:
    """A message queued for a bridge keeps its properties; one without has None."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        journal.forward_queued("up", journal.next_seq(), "f", b"1", 1, True, properties=PROPERTIES)
        await journal.forward_queued("up", journal.next_seq(), "g", b"2", 2, False)
    forwards = reread(path).forwards["up"]
    assert [(f.topic, f.retain, f.properties) for f in forwards] == [("f", True, PROPERTIES), ("g", False, None)]


async def test_an_mqtt5_session_keeps_its_expiry_and_the_end_of_its_connection(tmp_path: Path) -> None:
    """A session saved with an expiry reads back with it, and with the end time written when it went offline."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        await journal.session_saved("v5", "u", 5, expiry=60)
        await journal.session_saved("gone", None, 5, expiry=60)
        await journal.session_offline("gone", 30, 1_900_000_000.25)
        await journal.session_saved("v3", None, 4)
    sessions = {s.client_id: (s.protocol, s.session_expiry, s.ended_at) for s in reread(path).sessions}
    assert sessions == {"v5": (5, 60, None), "gone": (5, 30, 1_900_000_000.25), "v3": (4, None, None)}


async def test_saving_a_session_again_clears_its_end_time(tmp_path: Path) -> None:
    """A session resumed after it went offline is connected again: no end time, its new expiry."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        await journal.session_saved("c", None, 5, expiry=60)
        await journal.session_offline("c", 60, 1_900_000_000.0)
        await journal.session_saved("c", None, 5, expiry=120)
    (session,) = reread(path).sessions
    assert (session.session_expiry, session.ended_at) == (120, None)


async def test_subscriptions_keep_their_mqtt5_options(tmp_path: Path) -> None:
    """No local, retain as published and the identifier read back by filter; a filter without options has none."""
    path = tmp_path / "s.db"
    options = {
        "a/#": SubscriptionOptions(no_local=True),
        "b/+": SubscriptionOptions(retain_as_published=True, identifier=7),
    }
    with journal_on(path) as journal:
        await journal.session_saved("c", None, 5, expiry=60)
        await journal.subscribed("c", [("a/#", 1), ("b/+", 2), ("plain", 0)], options=options)
    (session,) = reread(path).sessions
    assert sorted(session.subscriptions) == [("a/#", 1), ("b/+", 2), ("plain", 0)]
    assert session.subscription_options == options


async def test_subscribing_again_without_options_clears_them(tmp_path: Path) -> None:
    """A filter subscribed again with default options has none stored any more."""
    path = tmp_path / "s.db"
    with journal_on(path) as journal:
        await journal.session_saved("c", None, 5, expiry=60)
        await journal.subscribed("c", [("a/#", 1)], options={"a/#": SubscriptionOptions(identifier=3)})
        await journal.subscribed("c", [("a/#", 1)])
    (session,) = reread(path).sessions
    assert session.subscription_options == {}
