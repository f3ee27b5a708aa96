"""Topic mapping of MQTT bridges (pure functions, no I/O).

A bridge rule has a *source filter* (the side a message is matched on: ``local_topic`` of a
forward, ``remote_topic`` of a subscription) and a *target* (the other side). A message whose
topic matches the source filter, by the broker's own matching rules (``+`` one level, ``#`` the
rest, no wildcard at the root matches a ``$`` topic), gets the topic:

- ``target`` empty: the message's topic, unchanged;
- ``target`` without wildcards: ``target``;
- ``target`` with wildcards: the levels the filter's wildcards matched, in order, form a list
  (``+`` adds the one level it matched, ``#`` every level it matched, possibly none); each
  ``+`` of the target takes the next level of the list and ``#`` takes all that remain. A ``#``
  that takes nothing disappears with its slash (``cmd/#`` -> ``cmd``), as ``#`` also matches
  its parent level. Filter ``+/nano/#`` on ``system/nano/a/b`` gives the list
  ``[system, a, b]``: target ``cmd/#`` -> ``cmd/system/a/b``, ``+/cmd/#`` -> ``system/cmd/a/b``.
  A target may use at most as many ``+`` as its filter has (``check_mapping``), so each ``+``
  always has its level (``plus_levels_fit``);

then ``prefix + topic + suffix``, concatenated as written (NanoMQ's examples write the slashes:
prefix ``"emqx/"``, suffix ``"/forward/rule1"``). Matching alone is ``topic_matches`` (or a
``TopicTree`` for many rules) in ``broker.mqtt.topics``.
"""

from __future__ import annotations

from broker.mqtt.topics import is_valid_topic_name, topic_matches

__all__ = ["is_valid_topic_filter", "map_topic", "matched_levels", "plus_levels_fit"]


def is_valid_topic_filter(topic_filter: str) -> bool:
    """Whether ``topic_filter`` may be subscribed to (4.7.1, 4.7.3): a valid name once its
    wildcards are ignored, ``#`` only as the whole last level, ``+`` only as a whole level."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            return False
        if "+" in level and level != "+":
            return False
    return is_valid_topic_name(topic_filter.replace("#", "x").replace("+", "x"))


def matched_levels(source_filter: str, topic: str) -> list[str] | None:
    """The levels of ``topic`` that the wildcards of ``source_filter`` matched, in order (None:
    the filter does not match the topic)."""
    if not topic_matches(source_filter, topic):
        return None
    topic_levels = topic.split("/")
    found: list[str] = []
    for index, level in enumerate(source_filter.split("/")):
        if level == "+":
            found.append(topic_levels[index])
        elif level == "#":
            found.extend(topic_levels[index:])
    return found


def map_topic(topic: str, source_filter: str, target: str, prefix: str = "", suffix: str = "") -> str:
    """The topic a message on ``topic`` (matched by ``source_filter``) gets on the other side
    (see the module docstring). ValueError if the filter does not match the topic or the result
    is not a valid topic name (empty, or over 65 535 bytes)."""
    levels = matched_levels(source_filter, topic)
    if levels is None:
        raise ValueError(f"{source_filter!r} does not match {topic!r}")
    if not target:
        mapped = topic
    elif "+" not in target and "#" not in target:
        mapped = target
    else:
        mapped = _fill(target, levels)
    result = prefix + mapped + suffix
    if not is_valid_topic_name(result):
        raise ValueError(f"{topic!r} maps to {result!r}, which is not a valid topic name")
    return result


def _fill(target: str, levels: list[str]) -> str:
    """``target`` with each ``+`` replaced by the next of ``levels`` and ``#`` by the rest."""
    out: list[str] = []
    remaining = iter(levels)
    for level in target.split("/"):
        if level == "+":
            out.append(next(remaining, ""))
        elif level == "#":
            out.extend(remaining)
        else:
            out.append(level)
    return "/".join(out)


def plus_levels_fit(source_filter: str, target: str) -> bool:
    """Whether every ``+`` of ``target`` has a level to take: no more ``+`` than ``source_filter`` has."""
    return target.split("/").count("+") <= source_filter.split("/").count("+")
