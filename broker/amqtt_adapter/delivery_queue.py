"""``DeliveryQueue``: the copies routed to one connection and not finished (a base class of
``Connection``): sent in the background, bounded by ``mqtt.max_mqueue_len`` and
``max_mqueue_bytes`` (the oldest QoS 0 copies make room for QoS 1/2 ones), counted as dropped when
they fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from amqtt.mqtt.constants import QOS_1
from amqtt.session import Session

from broker.amqtt_adapter.outbox import RoutedCopy
from broker.amqtt_adapter.outgoing import ConnectionClosing, DirectMessage
from broker.config.settings import Mqtt
from broker.faults import DelayLine, HeldCopy
from broker.mqtt.message_properties import MessageProperties
from broker.persistence.store import StoreError

if TYPE_CHECKING:
    from broker.amqtt_adapter.handler import EdgeHandler

__all__ = ["DeliveryQueue"]

log = logging.getLogger("edgemq.mqtt")

_PACKET_IDS = 65535


class DeliveryQueue:
    """The unfinished copies of one connection (see the module docstring)."""

    if TYPE_CHECKING:  # the Connection's
        handler: EdgeHandler
        session: Session
        count: int
        size: int
        _qos0: dict[asyncio.Future[Any], int]
        _deliveries: set[asyncio.Future[Any]]
        _evicted: set[asyncio.Future[Any]]
        _on_dropped: Callable[[int], None]

        direct_bytes: int
        _direct: set[int]
        delay_line: DelayLine | None

        def _not_durable(self) -> None: ...

        def _persist_queued(
            self, seq: int | None, message: RoutedCopy, qos: int, packet_id: int | None = None
        ) -> None: ...

    def _queue(
        self, message: RoutedCopy, qos: int, limits: Mqtt, seq: int | None, retain: bool = False,
        subscription_ids: tuple[int, ...] = (),
    ) -> bool:  # fmt: skip
        """Send a copy in the background, behind the unfinished ones (and those a delay fault
        holds); False if the client's queue is full."""
        count, size = self.count + len(self.session.inflight_out), self.size + self.direct_bytes
        if not self._make_room(count, size, len(message.data), qos, limits):
            return False
        self._persist_queued(seq, message, qos)
        held = self.delay_line.behind_due((message.topic, message.data, qos, seq)) if self.delay_line else None
        self.send_in_background(
            message.topic, message.data, qos, seq=seq, held=held, retain=retain, properties=message.properties,
            subscription_ids=subscription_ids,
        )  # fmt: skip
        return True

    def _room_in_flight(self, size: int, limits: Mqtt) -> bool:
        """Whether one more QoS 1 copy of ``size`` bytes may wait for its PUBACK: fewer than
        ``max_mqueue_len`` of the session's copies and than there are packet ids, and their
        payloads within ``max_mqueue_bytes``."""
        session = self.session
        in_flight = len(session.inflight_out)
        if in_flight >= limits.max_mqueue_len or in_flight + len(session.inflight_in) >= _PACKET_IDS:
            return False
        return not (self.direct_bytes and self.direct_bytes + size > limits.max_mqueue_bytes)

    def _in_flight_directly(
        self, message: RoutedCopy, seq: int | None, retain: bool = False, subscription_ids: tuple[int, ...] = ()
    ) -> int:
        """Note a QoS 1 copy written through the outbox: in flight until its PUBACK, with its row
        in the store; its packet id."""
        session = self.session
        packet_id: int = session.next_packet_id
        session.inflight_out[packet_id] = DirectMessage(
            packet_id, message.topic, QOS_1, message.data, retain, seq, message.properties, subscription_ids
        )
        self._persist_queued(seq, message, QOS_1, packet_id)
        self._direct.add(packet_id)
        self.direct_bytes += len(message.data)
        return packet_id

    def send_in_background(
        self,
        topic: str,
        data: bytes | bytearray,
        qos: int,
        *,
        retain: bool = False,
        counted: bool = True,
        seq: int | None = None,
        held: HeldCopy | None = None,
        properties: MessageProperties | None = None,
        subscription_ids: tuple[int, ...] = (),
    ) -> None:
        """Send one copy through amqtt's flows in a task (once it leaves the line, if ``held``);
        a counted copy that fails counts as dropped. ``seq``: the copy's row in the store
        (written already)."""
        publish = self.handler.mqtt_publish(
            topic, data, qos, retain=retain, seq=seq, properties=properties, subscription_ids=subscription_ids
        )
        task = asyncio.ensure_future(publish if held is None else held.run(publish))
        if held is not None:
            held.attach(task)
        self._deliveries.add(task)
        self.count += 1
        self.size += len(data)
        if qos == 0:
            self._qos0[task] = len(data)
        kept_if_closing = qos > 0 and not self.session.clean_session  # see ConnectionClosing
        task.add_done_callback(partial(self._delivery_done, kept_if_closing, counted, len(data)))

    def _make_room(self, count: int, size: int, incoming: int, qos: int, limits: Mqtt) -> bool:
        """Whether a copy of ``incoming`` bytes fits in a queue of ``count`` copies and ``size``
        bytes (``mqtt.max_mqueue_len`` and ``max_mqueue_bytes``; the first copy always fits). A
        QoS 1/2 copy makes room by dropping the oldest QoS 0 copies not yet written."""
        while count >= limits.max_mqueue_len or (size and size + incoming > limits.max_mqueue_bytes):
            freed = self._evict_qos0() if qos else None
            if freed is None:
                return False
            count, size = count - 1, size - freed
        return True

    def _evict_qos0(self) -> int | None:
        """Take the oldest QoS 0 copy out of the queue and return its size; None if there is none.
        A copy already written (its task done, not yet counted off) leaves without a drop; one
        not written yet is cancelled and counted as dropped."""
        while self._qos0:
            task = next(iter(self._qos0))
            size = self._qos0.pop(task)
            if task.done():
                return size
            if isinstance(task, asyncio.Task) and task.cancelling():
                continue  # being cancelled already (evicted, or the broker stops)
            task.cancel()  # safe: amqtt writes a packet whole, under its write lock
            self._evicted.add(task)
            self.size -= size
            self._on_dropped(1)
            return size
        return None

    def _delivery_done(self, kept_if_closing: bool, counted: bool, size: int, task: asyncio.Future[Any]) -> None:
        self._deliveries.discard(task)
        if task in self._evicted:  # counted (and its size taken off) when it was evicted
            self._evicted.discard(task)
            counted, size = False, 0
        self._qos0.pop(task, None)
        self.count -= 1
        self.size -= size
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.debug("delivery failed: %r", error)
        if isinstance(error, ConnectionClosing) and kept_if_closing:
            return  # a QoS 1/2 copy stays in the session's inflight_out (see ConnectionClosing)
        if isinstance(error, StoreError) and kept_if_closing:
            self._not_durable()  # its packet id or PUBREC could not be stored: resent on resume
            return
        if counted:
            self._on_dropped(1)
