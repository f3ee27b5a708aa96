"""What each fault matches and how much of it is left: the registry's records, read by the
adapter at the few points it consults them."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Literal

from broker.faults.delays import DelayLine
from broker.faults.scope import FaultScope
from broker.mqtt.topics import topic_matches

__all__ = ["AckHold", "ConnectRefusal", "DeliveryKind", "DeliveryVerdict"]

DeliveryKind = Literal["drop", "delay", "duplicate"]


@dataclass(eq=False)
class ConnectRefusal:
    """Refuse the next ``left`` CONNECTs: CONNACK ``code``, or (None) close without a CONNACK."""

    left: int
    code: int | None
    scope: FaultScope | None = None

    def take(self) -> None:
        """One CONNECT was refused; the fault clears itself after the last."""
        _count_down(self)


@dataclass(eq=False)
class DeliveryVerdict:
    """A fault on the copies routed to matching clients: ``drop`` them (counted as dropped),
    ``delay`` them, or send a QoS 1 one twice (``duplicate``: the second with DUP=1 and the
    same packet id). ``left`` copies (None: until undone); the adapter calls ``applied`` for
    each copy it changed."""

    kind: DeliveryKind
    topic_filter: str | None
    client_id: str | None
    left: int | None
    delay_range: tuple[float, float] = (0.0, 0.0)
    released: asyncio.Future[None] | None = None
    """Done once the fault is undone: a delayed copy still waiting leaves at once."""
    scope: FaultScope | None = None
    lines: set[DelayLine] = field(default_factory=set)
    """The broker's lines of held copies (a delay's copies join their connection's line)."""
    _random: random.Random = field(default_factory=random.Random)

    def matches(self, client_id: str, topic: str, qos: int) -> bool:
        """Whether the copy of ``topic`` for ``client_id`` (delivered at ``qos``) is affected."""
        if self.kind == "duplicate" and qos != 1:
            return False
        if self.client_id is not None and client_id != self.client_id:
            return False
        return self.topic_filter is None or topic_matches(self.topic_filter, topic)

    def delay(self) -> float:
        """Seconds one copy waits: fixed, or drawn uniformly from the range."""
        low, high = self.delay_range
        return low if low == high else self._random.uniform(low, high)

    def applied(self) -> None:
        """One copy was changed; a fault of N copies clears itself after the last."""
        _count_down(self)


@dataclass(eq=False)
class AckHold:
    """PUBACK and PUBCOMP for ``client_id``'s publishes wait until ``released`` (the undo)."""

    client_id: str
    released: asyncio.Future[None]
    scope: FaultScope | None = None


def _count_down(record: ConnectRefusal | DeliveryVerdict) -> None:
    """One use of a fault limited to N uses (``left`` None: unlimited); after the last it clears."""
    if record.left is None:
        return
    record.left -= 1
    if record.left <= 0 and record.scope is not None:
        record.scope.undo()
