"""The compiled topic ACL (broker/mqtt/acl.py): every rule of its docstring, the compile cache,
and agreement with a reference written from the docstring for random rules, clients and topics."""

from __future__ import annotations

import gc
import ipaddress
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config.settings import Acl, AclCondition, AclRule
from broker.mqtt.acl import Action, Client, allowed, compile_acl
from broker.mqtt.topics import TopicTree

ACTIONS: tuple[Action, ...] = ("publish", "subscribe", "receive")


def acl(*rules: dict[str, Any], no_match: str = "allow") -> Acl:
    return Acl.model_validate({"no_match": no_match, "rules": list(rules)})


def deny(**rule: Any) -> Acl:
    """One deny rule, everything else allowed: allowed() is False exactly where the rule covers."""
    return acl({"permit": "deny", **rule})


def test_first_matching_rule_decides() -> None:
    """Of two rules covering the same check, the first one's permit decides."""
    allow_first = acl({"permit": "allow", "topics": ["t"]}, {"permit": "deny", "topics": ["t"]})
    deny_first = acl({"permit": "deny", "topics": ["t"]}, {"permit": "allow", "topics": ["t"]})
    assert allowed(allow_first, Client("c"), "publish", "t")
    assert not allowed(deny_first, Client("c"), "publish", "t")


@pytest.mark.parametrize(("no_match", "expected"), [("allow", True), ("deny", False)])
def test_no_match_decides_when_no_rule_covers(no_match: str, expected: bool) -> None:
    """When no rule covers the check, no_match decides."""
    rules = acl({"permit": "allow", "topics": ["other"]}, {"permit": "deny", "topics": ["other"]}, no_match=no_match)
    assert all(allowed(rules, Client("c"), action, "t") is expected for action in ACTIONS)


@pytest.mark.parametrize(
    ("rule_action", "covered"),
    [
        ("publish", {"publish"}),
        ("subscribe", {"subscribe", "receive"}),  # subscribe rules also govern what is received
        ("pubsub", {"publish", "subscribe", "receive"}),
    ],
)
def test_rule_action_decides_which_checks_it_covers(rule_action: str, covered: set[str]) -> None:
    """publish rules cover publishing, subscribe rules subscribing and receiving, pubsub all three."""
    rules = deny(action=rule_action, topics=["t"])
    assert {action for action in ACTIONS if not allowed(rules, Client("c"), action, "t")} == covered


@pytest.mark.parametrize(
    ("condition", "client", "applies"),
    [
        ({"username": "u"}, Client("c", "u"), True),
        ({"username": "u"}, Client("c", "v"), False),
        ({"username": "u"}, Client("c"), False),
        ({"username": ""}, Client("c"), True),  # a client without a user name has the empty one
        ({"username": "#"}, Client("c"), True),  # "#": any user
        ({"clientid": "c"}, Client("c"), True),
        ({"clientid": "c"}, Client("d"), False),
        ({"clientid": "#"}, Client("d"), True),
        ({"username": "u", "clientid": "c"}, Client("c", "u"), True),
        ({"username": "u", "clientid": "c"}, Client("d", "u"), False),  # every field given must match
        ({"username": "u", "ipaddr": "10.0.0.0/8"}, Client("c", "u", "192.168.0.1"), False),
    ],
)
def test_username_and_clientid_conditions(condition: dict[str, str], client: Client, applies: bool) -> None:
    """A rule applies when its username, clientid and ipaddr (those given; "#" is any) all match."""
    assert allowed(deny(topics=["t"], **condition), client, "publish", "t") is not applies


@pytest.mark.parametrize(
    ("ipaddr", "address", "applies"),
    [
        ("10.0.0.1", "10.0.0.1", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("10.0.0.0/8", "10.9.8.7", True),
        ("10.0.0.1/8", "10.9.8.7", True),  # host bits in a network are ignored
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),  # IPv4-mapped addresses are IPv4
        ("fe80::/10", "fe80::1%eth0", True),  # a zone is not part of the address
        ("::1", "::1", True),
        ("10.0.0.0/8", "not an address", False),
        ("10.0.0.0/8", "", False),
        ("10.0.0.0/8", None, False),
    ],
)
def test_ipaddr_condition(ipaddr: str, address: str | None, applies: bool) -> None:
    """ipaddr matches the client's address, one address or a network; an unknown address never matches."""
    assert allowed(deny(ipaddr=ipaddr, topics=["t"]), Client("c", None, address), "publish", "t") is not applies


@pytest.mark.parametrize(
    ("terms", "client", "applies"),
    [
        ({"and": [{"username": "u"}, {"clientid": "c"}]}, Client("c", "u"), True),
        ({"and": [{"username": "u"}, {"clientid": "c"}]}, Client("d", "u"), False),
        ({"or": [{"username": "u"}, {"clientid": "c"}]}, Client("c"), True),
        ({"or": [{"username": "u"}, {"clientid": "c"}]}, Client("d", "u"), True),
        ({"or": [{"username": "u"}, {"clientid": "c"}]}, Client("d", "v"), False),
        ({"username": "u", "or": [{"clientid": "c"}]}, Client("c", "v"), False),  # the rule's own fields too
        ({"and": [{"username": "u"}], "or": [{"clientid": "c"}]}, Client("c", "u"), True),
        ({"and": [{"username": "u"}], "or": [{"clientid": "c"}]}, Client("d", "u"), False),
    ],
)
def test_and_or_terms(terms: dict[str, Any], client: Client, applies: bool) -> None:
    """A rule's "and" terms must all match and one of its "or" terms, on top of its own fields."""
    assert allowed(deny(topics=["t"], **terms), client, "publish", "t") is not applies


@pytest.mark.parametrize("topic", ["a", "a/b/c", "#", "+/x", "$SYS/x", "$app/#"])
def test_rule_without_topics_covers_every_topic(topic: str) -> None:
    """A rule without topics covers every name and filter, $ topics included."""
    assert not allowed(deny(), Client("c"), "subscribe", topic)


def test_rule_with_empty_topics_covers_nothing() -> None:
    """A rule with an empty topic list covers no topic."""
    assert allowed(deny(topics=[]), Client("c"), "publish", "t")


@pytest.mark.parametrize(
    ("rule_topic", "topic", "covered"),
    [
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),  # "#" covers the parent level
        ("a/#", "a/b/c", True),
        ("a/b", "a/+", False),  # a filter wider than the rule's is not covered
        ("a/#", "a/+", True),  # a subscription filter is covered when the rule's matches it as a name
        ("a/+", "a/#", True),  # ... where "#" is one level
        ("a/#/b", "a/#/b", True),  # ... or equals it
        ("a/#/b", "a/x/b", False),  # "#" that is not last is no wildcard
        ("#", "$SYS/x", True),  # a rule's wildcards cover $ topics
        ("+/x", "$app/x", True),
        ("+", "", True),  # an empty level is a level
        ("a//b", "a/b", False),
    ],
)
def test_topic_coverage(rule_topic: str, topic: str, covered: bool) -> None:
    """A rule topic covers names and filters by MQTT matching, wildcards covering $ topics too."""
    assert allowed(deny(topics=[rule_topic]), Client("c"), "subscribe", topic) is not covered


@pytest.mark.parametrize(
    ("rule_topic", "client", "topic", "covered"),
    [
        ("d/${clientid}/#", Client("c1"), "d/c1/x", True),
        ("d/${clientid}/#", Client("c1"), "d/c2/x", False),
        ("u/${username}", Client("c", "u1"), "u/u1", True),
        ("u/${username}", Client("c", "u1"), "u/c", False),
        ("d-${clientid}-${username}/x", Client("c", "u"), "d-c-u/x", True),  # inside a level
        ("${clientid}", Client("$c"), "$c", True),
        ("u/${username}1", Client("c", "u"), "u/u1", True),
        ("u/${username}1", Client("c", "u"), "u/u", False),
        ("d/${clientid}", Client("${username}", "u"), "d/${username}", True),  # a value is placed as it is
        ("d/${clientid}", Client("${username}", "u"), "d/u", False),
    ],
)
def test_placeholders_stand_for_the_client(rule_topic: str, client: Client, topic: str, covered: bool) -> None:
    """${clientid} and ${username} stand for the client's own values, in one level."""
    assert allowed(deny(topics=[rule_topic]), client, "publish", topic) is not covered


@pytest.mark.parametrize(
    ("placeholder", "client", "value"),
    [
        ("${clientid}", Client("", "u"), ""),
        ("${clientid}", Client("a/b", "u"), "a/b"),
        ("${clientid}", Client("+", "u"), "+"),
        ("${clientid}", Client("a#", "u"), "a#"),
        ("${username}", Client("c", ""), ""),
        ("${username}", Client("c", None), ""),
        ("${username}", Client("c", "x/y"), "x/y"),
        ("${username}", Client("c", "+"), "+"),
        ("${username}", Client("c", "#"), "#"),
    ],
)
def test_a_value_that_cannot_be_placed_fails_closed(placeholder: str, client: Client, value: str) -> None:
    """A value that is empty or holds / + # makes a deny rule with its placeholder cover any topic
    and an allow rule cover none, not even the topic the value would spell."""
    topics = [f"p/{placeholder}"]
    assert not allowed(deny(topics=topics), client, "publish", "anything/else")
    allow_only = acl({"permit": "allow", "topics": topics}, no_match="deny")
    assert not allowed(allow_only, client, "subscribe", f"p/{value}")
    assert not allowed(allow_only, client, "subscribe", "p/x")


def test_a_placeable_topic_beside_an_unplaceable_one_still_allows() -> None:
    """An allow rule skips only the topic whose placeholder cannot be placed, not its other topics."""
    rules = acl({"permit": "allow", "topics": ["p/${clientid}", "open/#"]}, no_match="deny")
    assert allowed(rules, Client("a/b"), "publish", "open/x")


def test_compiled_once_per_acl_object() -> None:
    """compile_acl returns the same compiled form for one Acl object and a new one for a new object."""
    rules = deny(topics=["t"])
    assert compile_acl(rules) is compile_acl(rules)
    assert compile_acl(deny(topics=["t"])) is not compile_acl(rules)


def test_compiled_form_leaves_with_its_acl() -> None:
    """Once an Acl is collected its compiled form is released too (a replaced settings object leaks nothing)."""
    rules = deny(topics=["t"])
    compiled = weakref.ref(compile_acl(rules))
    del rules
    gc.collect()
    assert compiled() is None


def test_compiled_acl_answers_as_allowed() -> None:
    """CompiledAcl.allows gives allowed()'s answer."""
    rules = acl({"permit": "allow", "username": "admin", "topics": ["s/#"]}, {"permit": "deny", "topics": ["s/#"]})
    compiled = compile_acl(rules)
    for client in (Client("c", "admin"), Client("c", "bob")):
        assert compiled.allows(client, "subscribe", "s/x") is allowed(rules, client, "subscribe", "s/x")
    assert compiled.allows(Client("c", "admin"), "subscribe", "s/x")
    assert not compiled.allows(Client("c", "bob"), "subscribe", "s/x")


# Reference: the module docstring read literally, one rule and one pattern at a time, with
# placeholders substituted as text and a one-filter TopicTree to match.


def reference_is(condition: AclCondition, client: Client) -> bool:
    if condition.username not in (None, "#") and condition.username != (client.username or ""):
        return False
    if condition.clientid not in (None, "#") and condition.clientid != client.client_id:
        return False
    if condition.ipaddr is None:
        return True
    try:
        ip = ipaddress.ip_address((client.address or "").partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip in ipaddress.ip_network(condition.ipaddr, strict=False)


def reference_covers(rule: AclRule, client: Client, action: Action, topic: str) -> bool:
    if rule.action not in ("pubsub", "subscribe" if action == "receive" else action):
        return False
    for pattern in rule.topics if rule.topics is not None else ["#"]:
        for placeholder, value in (("${clientid}", client.client_id), ("${username}", client.username)):
            if placeholder in pattern:
                if not value or any(c in value for c in "/+#"):
                    if rule.permit == "deny":
                        return True
                    break
                pattern = pattern.replace(placeholder, value)
        else:
            tree = TopicTree()
            tree.subscribe(pattern, "", 0)
            if pattern == topic or tree.match(topic, dollar_rule=False):
                return True
    return False


def reference_allowed(rules: Acl, client: Client, action: Action, topic: str) -> bool:
    for rule in rules.rules:
        applies = (
            reference_is(rule, client)
            and all(reference_is(term, client) for term in rule.all_of)
            and (not rule.any_of or any(reference_is(term, client) for term in rule.any_of))
        )
        if applies and reference_covers(rule, client, action, topic):
            return rule.permit == "allow"
    return rules.no_match == "allow"


_LEVEL = st.sampled_from(["a", "c1", "u1", "", "$SYS", "+", "#"])
_PATTERN_LEVEL = st.one_of(_LEVEL, st.sampled_from(["${clientid}", "${username}", "x${clientid}", "${username}1"]))
_CONDITION = st.fixed_dictionaries(
    {},
    optional={
        "username": st.sampled_from(["#", "u1", ""]),
        "clientid": st.sampled_from(["#", "c1"]),
        "ipaddr": st.sampled_from(["10.0.0.0/8", "127.0.0.1"]),
    },
)
_RULE = st.fixed_dictionaries(
    {"permit": st.sampled_from(["allow", "deny"]), "action": st.sampled_from(["publish", "subscribe", "pubsub"])},
    optional={
        "topics": st.lists(st.lists(_PATTERN_LEVEL, min_size=1, max_size=3).map("/".join), max_size=3),
        "and": st.lists(_CONDITION, max_size=2),
        "or": st.lists(_CONDITION, max_size=2),
    },
).flatmap(lambda rule: _CONDITION.map(lambda condition: {**condition, **rule}))
_CLIENT = st.builds(
    Client,
    st.sampled_from(["c1", "u1", "", "a/b", "+", "x"]),
    st.sampled_from([None, "", "u1", "c1", "a#"]),
    st.sampled_from([None, "127.0.0.1", "10.1.2.3", "::ffff:10.1.2.3", "fe80::1%eth0", "bad"]),
)


@settings(max_examples=500, deadline=None)
@given(
    rules=st.lists(_RULE, max_size=4),
    no_match=st.sampled_from(["allow", "deny"]),
    client=_CLIENT,
    action=st.sampled_from(ACTIONS),
    topic=st.lists(_LEVEL, min_size=1, max_size=4).map("/".join),
)
def test_compiled_acl_agrees_with_the_reference(
    rules: list[dict[str, Any]], no_match: str, client: Client, action: Action, topic: str
) -> None:
    """For random rules, clients and topics the compiled ACL decides as the reference does."""
    settings_acl = acl(*rules, no_match=no_match)
    assert allowed(settings_acl, client, action, topic) is reference_allowed(settings_acl, client, action, topic)
