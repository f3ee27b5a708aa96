"""The retained store: a filter finds exactly the retained topics it matches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.mqtt.retained import Retained, RetainedStore
from broker.mqtt.topics import TopicTree

LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x", "long level"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join)
FILTER_LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x", "+"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVELS, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


def matches(topic_filter: str, topic: str) -> bool:
    tree = TopicTree()
    tree.subscribe(topic_filter, "c", 0)
    return bool(tree.match(topic))


@given(st.lists(TOPICS, max_size=12), filters())
def test_matching_agrees_with_routing(topics: list[str], topic_filter: str) -> None:
    """A filter finds the retained topics routing would deliver to it, each once ($ rule included)."""
    store = RetainedStore()
    for topic in topics:
        store.put(topic, b"p", 1)
    found = sorted(r.topic for r in store.matching(topic_filter))
    assert found == sorted({t for t in topics if matches(topic_filter, t)})


def test_empty_payload_deletes_and_prunes() -> None:
    """3.3.1-10: an empty retained payload removes the topic's message; the count follows."""
    store = RetainedStore()
    store.put("a/b/c", b"1", 0)
    store.put("a", b"2", 1)
    store.put("a/b/c", b"", 0)
    assert len(store) == 1
    assert store.get("a/b/c") is None
    assert store.matching("#") == [Retained("a", b"2", 1)]
    assert not store.delete("a/b/c")
    assert store.delete("a")
    assert len(store) == 0
    assert store.all() == []


def test_put_replaces_the_message_of_a_topic() -> None:
    """The last retained message of a topic is the one kept."""
    store = RetainedStore()
    store.put("t", b"old", 0)
    store.put("t", b"new", 2)
    assert len(store) == 1
    assert store.get("t") == Retained("t", b"new", 2)
