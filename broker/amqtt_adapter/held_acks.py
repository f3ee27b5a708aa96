"""Acknowledgements held back until the commit that makes their PUBLISH durable.

A QoS 1/2 PUBLISH (and a PUBREL) is acknowledged once what it changed in the store is
committed. The connection keeps reading meanwhile, so one commit serves what arrives during
it; the acknowledgements wait in a queue, released in the order their packets came
(MQTT-4.6.0-2): one that needs no commit waits behind one held back. A commit that fails
releases nothing and ends the connection, so the client sends again what was not acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.session import Session

from broker.amqtt_adapter.handler import EdgeHandler
from broker.amqtt_adapter.outbox import Outbox
from broker.faults import Faults
from broker.persistence.store import StoreError

__all__ = ["ACK_TYPES", "HeldAcknowledgements", "held_ack"]

ACK_TYPES = {1: 0x40, 2: 0x50, 6: 0x70}
"""The acknowledgement of a PUBLISH of QoS 1, 2, and of a PUBREL (``kind`` 6), as packet type."""
_Held = deque[tuple[asyncio.Future[None] | None, bytes, int, int]]  # commit, packet, kind, packet id


def held_ack(faults: Faults, client_id: str, durable: asyncio.Future[None] | None) -> asyncio.Future[None] | None:
    """What a PUBACK or PUBCOMP waits for: its commit, and the undo of a fault that withholds
    ``client_id``'s acknowledgements (asked only while a fault is active)."""
    released = faults.ack_hold(client_id)
    if released is None:
        return durable
    if durable is None:
        return asyncio.shield(released)  # shared by every held acknowledgement: never cancelled by one
    return asyncio.ensure_future(_both(durable, released))


async def _both(durable: asyncio.Future[None], released: asyncio.Future[None]) -> None:
    """Once the commit and the undo have settled (the commit's error, if any); cancelling this
    cancels neither, for both are shared (unlike ``asyncio.gather``)."""
    await asyncio.shield(released)
    await asyncio.shield(durable)


class HeldAcknowledgements:
    """The acknowledging half of ``Connection`` (a base class of it)."""

    handler: EdgeHandler
    session: Session
    outbox: Outbox | None
    end_reason: str | None
    _held: _Held | None = None  # made on first use
    _spawn: Callable[[Coroutine[Any, Any, Any]], None]  # Connection's: runs a task it keeps

    async def _acknowledge(self, kind: int, packet_id: int, durable: asyncio.Future[None] | None) -> None:
        """PUBACK, PUBREC (``kind`` 1, 2) or PUBCOMP (6), once ``durable`` is committed, in the
        order the packets came (MQTT-4.6.0-2): one behind an acknowledgement held back waits too.
        The reading goes on meanwhile, so the cost of a commit is shared by what arrives."""
        if self.outbox is None:  # a websocket: amqtt writes the acknowledgement, one at a time
            if durable is not None:
                try:
                    await asyncio.shield(durable)  # a commit is shared: this task's cancellation is its own
                except StoreError:
                    if kind == 2:
                        self.session.inflight_in.pop(packet_id, None)  # see _forget_unacknowledged
                    self._not_durable()
                    return
            await self.handler.acknowledge(kind, packet_id)
            return
        ack = bytes((ACK_TYPES[kind], 2)) + packet_id.to_bytes(2, "big")
        if durable is None and not self._held:
            self.outbox.put(ack)
            return
        if self._held is None:
            self._held = deque()
        self._held.append((durable, ack, kind, packet_id))
        if durable is not None and not durable.done():
            durable.add_done_callback(self._release_held)
        else:
            self._release_held()

    def _release_held(self, _: object = None) -> None:
        """Send the held acknowledgements whose commits settled, oldest first."""
        held, outbox = self._held, self.outbox
        while held:  # None: nothing was ever held
            commit, ack, _, _ = held[0]
            if commit is not None:
                if not commit.done():
                    return
                if commit.cancelled() or commit.exception() is not None:
                    self._forget_unacknowledged(held)
                    self._not_durable()
                    return
            held.popleft()
            if outbox is not None:
                outbox.put(ack)

    def _forget_unacknowledged(self, held: _Held) -> None:
        """Drop acknowledgements that will not be sent; a QoS 2 PUBLISH among them is routed
        again when the client resends it (its copies may not be durable: once more beats lost)."""
        for _, _, kind, packet_id in held:
            if kind == 2:
                self.session.inflight_in.pop(packet_id, None)
        held.clear()

    def _not_durable(self) -> None:
        """What was received cannot be made durable: it is not acknowledged, and the connection
        ends so that the client sends it again when it reconnects (MQTT 4.4)."""
        if self.end_reason is None or not self.end_reason.startswith("the store"):
            self.end_reason = "the store cannot be written: unacknowledged messages will be resent"
            self._spawn(self.handler.handle_connection_closed())
