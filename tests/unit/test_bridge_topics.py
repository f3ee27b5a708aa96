"""Bridge topic mapping: matching by the broker's rules, wildcard filling, prefix and suffix."""

from __future__ import annotations

import pytest

from broker.bridges.topics import is_valid_topic_filter, map_topic, matched_levels, plus_levels_fit


@pytest.mark.parametrize(
    ("topic", "source_filter", "target", "prefix", "suffix", "expected"),
    [
        ("sensor/1/temp", "sensor/#", "", "", "", "sensor/1/temp"),
        ("sensor/1/temp", "sensor/#", "cloud/fixed", "", "", "cloud/fixed"),
        ("topic1", "topic1", "fwd/topic1", "emqx/", "/forward/rule1", "emqx/fwd/topic1/forward/rule1"),
        ("topic1", "#", "", "nanomq/", "/forward/rule2", "nanomq/topic1/forward/rule2"),
        ("system/nano/a/b", "+/nano/#", "cmd/#", "", "", "cmd/system/a/b"),
        ("system/nano/a/b", "+/nano/#", "+/cmd/#", "", "", "system/cmd/a/b"),
        ("a/b/c", "+/+/c", "x/+/y/+", "", "", "x/a/y/b"),
        ("a/b/c", "+/+/c", "x/+", "", "", "x/a"),
        ("a/b/c", "+/+/c", "x/+/#", "", "", "x/a/b"),
        ("telemetry", "telemetry/#", "up/#", "", "", "up"),
        ("telemetry/", "telemetry/#", "up/#", "", "", "up/"),
        ("a//b", "a/+/b", "x/+/y", "", "", "x//y"),
        ("/lead", "+/lead", "x/+", "", "", "x/"),
        ("capteur/température/ß", "capteur/#", "données/#", "", "", "données/température/ß"),
        ("$app/x", "$app/#", "up/#", "", "", "up/x"),
        ("d/1", "d/+", "", "site/", "", "site/d/1"),
    ],
)
def test_map_topic(topic: str, source_filter: str, target: str, prefix: str, suffix: str, expected: str) -> None:
    """A matching topic maps to the target filled with the filter's matched levels, then prefix + topic + suffix."""
    assert map_topic(topic, source_filter, target, prefix, suffix) == expected


@pytest.mark.parametrize(
    ("source_filter", "topic"),
    [
        ("#", "$SYS/broker/uptime"),
        ("+/broker/uptime", "$SYS/broker/uptime"),
        ("a/+", "a/b/c"),
        ("a/b", "a/B"),
        ("a/#", "b"),
    ],
)
def test_no_match_is_an_error(source_filter: str, topic: str) -> None:
    """A topic the filter does not match (a root wildcard never matches a $ topic) cannot be mapped."""
    assert matched_levels(source_filter, topic) is None
    with pytest.raises(ValueError, match="does not match"):
        map_topic(topic, source_filter, "x")


def test_empty_result_is_an_error() -> None:
    """A mapping that leaves no topic at all raises instead of returning an empty topic."""
    with pytest.raises(ValueError, match="not a valid topic name"):
        map_topic("a", "a/#", "#")


def test_result_over_the_length_limit_is_an_error() -> None:
    """A mapping beyond MQTT's 65 535 bytes raises."""
    with pytest.raises(ValueError, match="not a valid topic name"):
        map_topic("a", "a", "", prefix="p" * 65_535)


def test_matched_levels_in_order() -> None:
    """The wildcards' levels come in filter order, '#' giving every level it matched."""
    assert matched_levels("+/x/+/#", "a/x/b/c/d") == ["a", "b", "c", "d"]


def test_hash_matches_the_parent_level() -> None:
    """'#' matching its parent level contributes no level."""
    assert matched_levels("a/#", "a") == []


@pytest.mark.parametrize(
    ("topic_filter", "valid"),
    [
        ("#", True),
        ("+", True),
        ("a/+/b/#", True),
        ("$SYS/#", True),
        ("a//b", True),
        ("/", True),
        ("données/+", True),
        ("", False),
        ("a/#/b", False),
        ("a#", False),
        ("a/b+", False),
        ("a\x00b", False),
        ("a" * 65_536, False),
    ],
)
def test_is_valid_topic_filter(topic_filter: str, valid: bool) -> None:
    """Wildcards only as whole levels, '#' only last, 1 to 65 535 bytes, no NUL."""
    assert is_valid_topic_filter(topic_filter) is valid


@pytest.mark.parametrize(
    ("source_filter", "target", "fits"),
    [
        ("+/+", "x/+/+", True),
        ("+/#", "x/+/#", True),
        ("a/#", "x/+", False),
        ("a", "x/#", True),
    ],
)
def test_plus_levels_fit(source_filter: str, target: str, fits: bool) -> None:
    """A target may use no more '+' than its filter has, so each '+' always has a level."""
    assert plus_levels_fit(source_filter, target) is fits
