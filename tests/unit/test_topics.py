"""The topic trie against MQTT 3.1.1 section 4.7 and a brute-force reference matcher."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.mqtt.topics import TopicTree, TreeNode, is_valid_topic_name, topic_matches


def reference_match(topic_filter: str, topic: str) -> bool:
    """Straightforward matcher written from the standard's text."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),  # 4.7.1.2: '#' also matches the parent level
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "/x", True),  # empty levels are levels
        ("+", "", True),
        ("#", "$SYS/x", False),  # 4.7.2: wildcards at the start do not match $ topics
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/+/c", "a//c", True),
    ],
)
def test_match_table(topic_filter: str, topic: str, matches: bool) -> None:
    """Each row of the matching table holds."""
    tree = TopicTree()
    tree.subscribe(topic_filter, "c", 1)
    assert (tree.match(topic) == [("c", 1)]) is matches


def test_random_filters_agree_with_reference() -> None:
    """For random filters and topics the trie finds exactly the reference's matches."""
    rng = random.Random(1883)
    words = ["a", "b", "", "$S"]
    filters: set[str] = set()
    while len(filters) < 200:
        levels = [rng.choice([*words, "+"]) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            levels.append("#")
        filters.add("/".join(levels))
    tree = TopicTree()
    for index, topic_filter in enumerate(sorted(filters)):
        tree.subscribe(topic_filter, f"c{index}", 0)
    by_client = {f"c{i}": f for i, f in enumerate(sorted(filters))}
    for _ in range(500):
        topic = "/".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
        found = sorted(by_client[cid] for cid, _ in tree.match(topic))
        assert found == sorted(f for f in filters if reference_match(f, topic)), topic


def test_one_entry_per_matching_filter() -> None:
    """A client holding two matching filters is returned twice, with each granted QoS."""
    tree = TopicTree()
    tree.subscribe("t/#", "c", 1)
    tree.subscribe("t/+", "c", 0)
    assert sorted(tree.match("t/x")) == [("c", 0), ("c", 1)]


def test_resubscribe_replaces_qos() -> None:
    """Subscribing again to the same filter replaces the QoS."""
    tree = TopicTree()
    tree.subscribe("t", "c", 0)
    tree.subscribe("t", "c", 2)
    assert tree.match("t") == [("c", 2)]


def test_unsubscribe_prunes_empty_branches() -> None:
    """Removing the last subscription of a branch removes its nodes from the tree."""
    tree = TopicTree()
    tree.subscribe("a/b/c", "c1", 0)
    tree.subscribe("a", "c2", 0)
    assert tree.unsubscribe("a/b/c", "c1")
    assert not tree.unsubscribe("a/b/c", "c1")
    assert tree.levels() == [[TreeNode("", 1, ())], [TreeNode("a", 0, ("c2",))]]


def test_levels_breadth_first() -> None:
    """levels() lists the root, then every depth, with child counts and subscribers."""
    tree = TopicTree()
    tree.subscribe("a/b", "c1", 0)
    tree.subscribe("a/c", "c2", 0)
    tree.subscribe("x", "c1", 0)
    assert tree.levels() == [
        [TreeNode("", 2, ())],
        [TreeNode("a", 2, ()), TreeNode("x", 0, ("c1",))],
        [TreeNode("b", 0, ("c1",)), TreeNode("c", 0, ("c2",))],
    ]


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        ("a/b", True),
        ("a/+", False),
        ("#", False),
        ("", False),
        ("a\x00b", False),  # 1.5.3-2: no U+0000
        ("a/\ud800", False),  # 1.5.3-1: no lone surrogate (not UTF-8)
        ("\u00e9" * 32_767, True),  # 65 534 bytes of UTF-8
        ("\u00e9" * 32_768, False),  # 65 536 bytes
        ("a" * 65_535, True),
        ("a" * 65_536, False),
    ],
)
def test_topic_name_validation(topic: str, valid: bool) -> None:
    """Topic names to publish to are 1 to 65 535 bytes of UTF-8 without U+0000 or wildcards (1.5.3, 3.3.2.1)."""
    assert is_valid_topic_name(topic) is valid


def test_matching_a_deep_topic_does_not_recurse() -> None:
    """Matching is iterative: filters far deeper than Python's recursion limit still match."""
    deep = "/".join(["x"] * 5000)
    tree = TopicTree()
    tree.subscribe(deep, "deep", 1)
    tree.subscribe("x/+/#", "wild", 0)
    assert sorted(tree.match(deep)) == [("deep", 1), ("wild", 0)]


# Levels that exercise every rule: plain words, empty levels, $ at the root, and wildcards
# (which, inside a topic, are literal levels: the ACL matches subscription filters as names).
_LEVELS = st.sampled_from(["a", "b", "", "$", "$SYS", "+", "#"])
_PATHS = st.lists(_LEVELS, min_size=1, max_size=4).map("/".join)


@settings(max_examples=1000)
@given(topic_filter=_PATHS, topic=_PATHS, dollar_rule=st.booleans())
def test_topic_matches_agrees_with_the_tree(topic_filter: str, topic: str, dollar_rule: bool) -> None:
    """topic_matches gives the same answer as a TopicTree holding only that filter."""
    tree = TopicTree()
    tree.subscribe(topic_filter, "c", 0)
    expected = bool(tree.match(topic, dollar_rule=dollar_rule))
    assert topic_matches(topic_filter, topic, dollar_rule=dollar_rule) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "dollar_rule", "matches"),
    [
        ("#", "$SYS/x", True, False),
        ("#", "$SYS/x", False, True),  # ACL rules: a wildcard at the root covers $ topics
        ("+/x", "$app/x", False, True),
        ("a/#", "a", True, True),
        ("a/#/b", "a/x/b", True, False),  # "#" that is not last is no wildcard
        ("a/#/b", "a/#/b", True, True),
        ("a/+", "a/#", True, True),  # a filter seen as a name: "#" is one level
        ("a/+", "a/b/c", True, False),
    ],
)
def test_topic_matches_table(topic_filter: str, topic: str, dollar_rule: bool, matches: bool) -> None:
    """Each row of the one-filter matching table holds."""
    assert topic_matches(topic_filter, topic, dollar_rule=dollar_rule) is matches
