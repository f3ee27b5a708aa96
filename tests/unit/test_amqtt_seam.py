"""The amqtt seam (broker/amqtt_adapter/seam.py) matches the installed amqtt and the adapter's code.

When a test here fails after an amqtt upgrade or an adapter change, its message holds the lines to
paste into seam.py's docstring (then write a note for new ones).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ForwardRef

import pytest
from amqtt.broker import Broker
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.session import ApplicationMessage, OutgoingApplicationMessage

import broker.amqtt_adapter
from broker.amqtt_adapter import seam
from tests.unit.amqtt_members import import_object, instance_attributes, static_member
from tests.unit.amqtt_seam_scan import scan

ADAPTER = Path(broker.amqtt_adapter.__file__).parent


def adapter_sources() -> dict[str, str]:
    """The adapter's modules (seam.py, which only describes the seam, left out)."""
    return {p.stem: p.read_text() for p in sorted(ADAPTER.glob("*.py")) if p.name != "seam.py"}


class _Shown:
    """An annotation shown as the given text (inspect quotes strings)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(annotation: Any) -> str:
    """An annotation as amqtt writes it, with module paths left out."""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, ForwardRef):
        return annotation.__forward_arg__
    text = re.sub(r"ForwardRef\('([^']*)'\)", r"\1", inspect.formatannotation(annotation)).replace("~", "")
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*)", "", text)


def render_signature(function: Callable[..., Any]) -> str:
    """A function's signature: parameter names, kinds and defaults, annotations as text."""
    signature = inspect.signature(function)
    empty = inspect.Signature.empty
    parameters = [
        p if p.annotation is empty else p.replace(annotation=_Shown(_annotation(p.annotation)))
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    returns = returns if returns is empty else _Shown(_annotation(returns))
    return str(signature.replace(parameters=parameters, return_annotation=returns))


def installed(kind: str, name: str) -> seam.SeamEntry:
    """The entry ``kind`` ``name`` as the installed amqtt has it; LookupError if amqtt lacks the name."""
    owner_path, _, member = name.rpartition(".")
    try:
        owner = import_object(owner_path)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"{owner_path} is gone ({exc})") from None
    if inspect.ismodule(owner):
        if not hasattr(owner, member):
            raise LookupError(f"{owner_path} has no {member}")
        value = getattr(owner, member)
    elif isinstance(owner, type):
        value = static_member(owner, member)
        if value is None and member not in instance_attributes(owner):
            raise LookupError(f"amqtt's {owner.__qualname__} no longer defines or sets {member}")
    else:
        raise LookupError(f"{owner_path} is neither a module nor a class")
    return seam.SeamEntry(kind, name, render_signature(value) if inspect.isfunction(value) else None)


def differences(listed: Iterable[seam.SeamEntry]) -> list[str]:
    """Every way the installed amqtt differs from ``listed``: one message per entry, with its new line."""
    found: list[str] = []
    for entry in listed:
        try:
            actual = installed(entry.kind, entry.name)
        except LookupError as exc:
            found.append(f"{entry.kind} {entry.name}: {exc}")
            continue
        if actual.signature != entry.signature:
            found.append(
                f"{entry.kind} {entry.name}: changed\n"
                f"  listed: {entry.signature or '(not a function)'}\n"
                f"  amqtt:  {actual.signature or '(not a function)'}\n"
                f"  new line:\n{actual.line()}"
            )
    return found


def completeness(listed: Iterable[seam.SeamEntry], sources: dict[str, str]) -> tuple[list[str], list[str]]:
    """(missing, stale): lines for amqtt names the sources use that are not listed, and listed lines
    for names they no longer use."""
    listed = list(listed)
    used = scan(sources)
    keys = {(e.kind, e.name) for e in listed}
    order = {kind: index for index, kind in enumerate(seam.KINDS)}
    missing = [installed(kind, name).line() for kind, name in sorted(used - keys, key=lambda k: (order[k[0]], k[1]))]
    stale = [e.line() for e in listed if (e.kind, e.name) not in used]
    return missing, stale


def test_the_list_parses() -> None:
    """seam.py's docstring lists entries of every kind, each name once per kind, each written as rendered."""
    entries = seam.entries()
    assert {e.kind for e in entries} == set(seam.KINDS)
    assert len({(e.kind, e.name) for e in entries}) == len(entries)
    assert all(e.line() in (seam.__doc__ or "") for e in entries)


def test_every_listed_name_is_in_installed_amqtt_as_listed() -> None:
    """Every listed amqtt name exists in the installed amqtt, with the listed signature."""
    found = differences(seam.entries())
    assert not found, "amqtt differs from broker/amqtt_adapter/seam.py:\n\n" + "\n\n".join(found)


def test_the_list_names_exactly_the_amqtt_names_the_adapter_uses() -> None:
    """Every amqtt name the adapter's code uses is listed, and every listed name is still used."""
    missing, stale = completeness(seam.entries(), adapter_sources())
    report = []
    if missing:
        report.append("add to broker/amqtt_adapter/seam.py (with a note):\n" + "\n".join(missing))
    if stale:
        report.append("remove from broker/amqtt_adapter/seam.py (no longer used):\n" + "\n".join(stale))
    assert not report, "\n\n".join(report)


def test_a_changed_amqtt_is_reported_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed signature, a removed method and an attribute amqtt stops setting are all reported at once."""

    async def _delete_session(self, client_id: str, *, reason: str = "") -> None:  # type: ignore[no-untyped-def]
        """amqtt's, with a new parameter."""

    def __init__(self, packet_id, topic, qos, data, retain):  # type: ignore[no-untyped-def]
        """amqtt's, without setting ``direction``."""
        ApplicationMessage.__init__(self, packet_id, topic, qos, data, retain)

    monkeypatch.setattr(Broker, "_delete_session", _delete_session)
    monkeypatch.delattr(ProtocolHandler, "handle_pubrec")  # BrokerProtocolHandler inherits it
    monkeypatch.setattr(OutgoingApplicationMessage, "__init__", __init__)
    monkeypatch.delattr(OutgoingApplicationMessage, "direction")  # its slot
    found = differences(seam.entries())
    assert [f.split("\n")[0] for f in found] == [
        "override amqtt.broker.Broker._delete_session: changed",
        "call amqtt.broker.Broker._delete_session: changed",
        "call amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_pubrec: "
        "amqtt's BrokerProtocolHandler no longer defines or sets handle_pubrec",
        "override amqtt.session.OutgoingApplicationMessage.__init__: changed",
        "call amqtt.session.OutgoingApplicationMessage.__init__: changed",
        "read amqtt.session.OutgoingApplicationMessage.direction: "
        "amqtt's OutgoingApplicationMessage no longer defines or sets direction",
    ]
    assert "  amqtt:  (self, client_id: str, *, reason: str = '') -> None" in found[0]


def test_new_and_no_longer_used_names_are_reported() -> None:
    """An adapter that uses an unlisted amqtt name, and no longer uses a listed one, gets both lines."""
    source = (
        "from amqtt.broker import Broker\n"
        "class B(Broker):\n"
        "    def _stop_handler(self, handler):\n"
        "        return self._broadcast_queue\n"
    )
    listed = [seam.SeamEntry("import", "amqtt.broker.Broker"), seam.SeamEntry("read", "amqtt.broker.Broker._sessions")]
    missing, stale = completeness(listed, {"fake": source})
    assert missing == [
        "    override  amqtt.broker.Broker._stop_handler(self, handler: BrokerProtocolHandler) -> None",
        "    read      amqtt.broker.Broker._broadcast_queue",
    ]
    assert stale == ["    read      amqtt.broker.Broker._sessions"]


def test_names_used_through_a_mixin_or_an_attribute_of_known_class_are_found() -> None:
    """A mixin of an amqtt subclass overrides its amqtt base's names (a bare annotation does not), and
    ``x.attr.name`` resolves through an attribute annotated in a class body or assigned in ``__init__``."""
    source = (
        "from amqtt.broker import Broker\n"
        "from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler\n"
        "from amqtt.session import Session\n"
        "class Holder:\n"
        "    handler: BrokerProtocolHandler\n"
        "    def __init__(self, session: Session) -> None:\n"
        "        self.other, self.session = None, session\n"
        "class Mixin:\n"
        "    _sessions: dict\n"
        "    async def _broadcast_loop(self):\n"
        "        return self._sessions\n"
        "    def use(self, holder: Holder):\n"
        "        session = holder.session\n"
        "        return holder.handler.keepalive_timeout, session.client_id\n"
        "class B(Mixin, Broker):\n"
        "    pass\n"
    )
    missing, _ = completeness([], {"fake": source})
    assert [line.split("(")[0] for line in missing] == [
        "    import    amqtt.broker.Broker",
        "    import    amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler",
        "    import    amqtt.session.Session",
        "    override  amqtt.broker.Broker._broadcast_loop",
        "    read      amqtt.broker.Broker._sessions",
        "    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.keepalive_timeout",
        "    read      amqtt.session.Session.client_id",
    ]
