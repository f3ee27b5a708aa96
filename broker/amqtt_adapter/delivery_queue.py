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

from amqtt.session import Session

from broker.amqtt_adapter.outgoing import ConnectionClosing
from broker.config.settings import Mqtt
from broker.faults import HeldCopy
from broker.mqtt.message_properties import MessageProperties
from broker.persistence.store import StoreError

if TYPE_CHECKING:
    from broker.amqtt_adapter.handler import EdgeHandler

__all__ = ["DeliveryQueue"]

log = logging.getLogger("edgemq.mqtt")


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

        def _not_durable(self) -> None: ...

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
