"""Outgoing QoS 1/2 deliveries: a copy stays in flight until its final acknowledgement.

amqtt drops an outgoing message after a fixed 5 s without acknowledgement (and QoS 2 after
PUBREC), and blocks the session for up to 10 s retrying. Here a message stays in
``session.inflight_out`` until its PUBACK/PUBCOMP; if the connection ends first it is resent
with DUP=1 when the session resumes (MQTT 4.4). A persistent session's copy has a row in the
store (``seq``): its packet id and PUBREC are written before they matter, the row is deleted at
its final acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import OUTGOING, IncomingApplicationMessage, OutgoingApplicationMessage

from broker.persistence.journal import Journal

__all__ = ["ConnectionClosing", "DirectMessage", "OutgoingCopy", "OutgoingFlows"]

log = logging.getLogger("edgemq.mqtt")


class ConnectionClosing(ConnectionError):
    """A delivery that starts once the connection is closing. A QoS 1/2 copy for a persistent
    session stays in its ``inflight_out`` (resent when the session resumes, counted as dropped if
    the session is discarded); any other copy is lost."""


class OutgoingCopy(OutgoingApplicationMessage):
    """An outgoing message; ``seq`` names its row in the store (None: not persisted)."""

    __slots__ = ("seq",)

    def __init__(
        self, packet_id: int | None, topic: str, qos: int | None, data: bytes | bytearray, retain: bool, seq: int | None
    ) -> None:
        super().__init__(packet_id, topic, qos, data, retain)
        self.seq = seq


class DirectMessage(OutgoingCopy):
    """An outgoing QoS 1 message written through the outbox; it waits for its PUBACK without a task."""

    __slots__ = ()


class OutgoingFlows(BrokerProtocolHandler):
    """The outgoing half of ``EdgeHandler`` (its base class)."""

    _stopping = False
    journal: Journal | None = None
    """Set by the Connection of a persistent session when the broker persists: its copies' rows."""
    _publish_tail: asyncio.Future[None] | None = None  # settles once the last held-back copy is written

    async def handle_puback(self, puback: PubackPacket) -> None:
        assert puback.variable_header is not None  # amqtt's decoder sets it
        self._settle(self._puback_waiters, puback.variable_header.packet_id, puback)

    async def handle_pubcomp(self, pubcomp: PubcompPacket) -> None:
        self._settle(self._pubcomp_waiters, pubcomp.packet_id, pubcomp)

    def _settle(self, waiters: dict[int, asyncio.Future[Any]], packet_id: int, packet: Any) -> None:
        """The final acknowledgement of an outgoing message ends its delivery at once: it leaves
        ``inflight_out`` now, not when its task next runs (a session ended in between would
        count a delivered message as lost). An unexpected one is the client's fault: DEBUG."""
        waiter = waiters.get(packet_id)
        if waiter is None or waiter.done():
            log.debug("%s for a message not in flight: %d", type(packet).__name__, packet_id)
            return
        if self.session is not None:
            message = self.session.inflight_out.pop(packet_id, None)
            self.forget_copy(message)
        waiter.set_result(packet)

    def forget_copy(self, message: Any) -> None:
        """A copy's final acknowledgement came: its row in the store goes too."""
        seq = getattr(message, "seq", None)
        if seq is not None and self.journal is not None and self.session is not None:
            self.journal.acknowledged(self.session.client_id, seq)

    async def mqtt_publish(
        self,
        topic: str,
        data: bytes | bytearray,
        qos: int | None,
        retain: bool,
        ack_timeout: int | None = None,
        seq: int | None = None,
    ) -> OutgoingApplicationMessage:
        """amqtt's, with the copy's row in the store (``seq``) and no time limit (see the class)."""
        assert self.session is not None
        packet_id = self.session.next_packet_id if qos else None
        message = OutgoingCopy(packet_id, topic, qos, data, retain, seq)
        await self._handle_message_flow(message)
        return message

    async def _send_and_wait(
        self, send: Coroutine[Any, Any, None], waiters: dict[int, asyncio.Future[Any]], packet_id: int
    ) -> Any:
        """Send a packet, then wait for its acknowledgement; the waiter is in place before the
        packet is written, so an acknowledgement read while the write drains is not lost."""
        if self._stopping:
            send.close()
            raise ConnectionClosing("the connection is closing")
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiters[packet_id] = waiter
        try:
            await send
            return await waiter
        finally:
            if waiters.get(packet_id) is waiter:
                del waiters[packet_id]

    def _keep_in_flight(self, message: OutgoingApplicationMessage) -> None:
        """A persistent session's copy enters ``inflight_out`` before the closing check, so a copy
        whose delivery starts after the connection began to close is resent, not lost."""
        assert self.session is not None
        if not self.session.clean_session:
            self.session.inflight_out[message.packet_id] = message

    async def _send_publish(self, message: OutgoingApplicationMessage) -> None:
        assert self.session is not None
        resent = message.publish_packet is not None or isinstance(message, DirectMessage)
        seq = getattr(message, "seq", None)
        durable: asyncio.Future[None] | None = None
        if not resent and seq is not None and self.journal is not None and message.packet_id is not None:
            # its packet id is kept, so that it is resent as the same message after a restart;
            # a QoS 2 one is sent only then (a new id would make the receiver take it twice)
            sent = self.journal.sent(self.session.client_id, seq, message.packet_id)
            durable = sent if message.qos == QOS_2 else None
        before = self._publish_tail
        if durable is None and (before is None or before.done()):
            await self._write_publish(message, resent)
            return
        # copies leave in the order they were routed: one behind a held-back copy waits for it
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._publish_tail = mine
        try:
            if before is not None:
                await asyncio.shield(before)
            if durable is not None:
                await durable
            await self._write_publish(message, resent)
        finally:
            mine.set_result(None)

    async def _write_publish(self, message: OutgoingApplicationMessage, resent: bool) -> None:
        assert self.session is not None
        self.session.inflight_out[message.packet_id] = message
        packet = message.build_publish_packet(dup=resent)
        await self._send_packet(packet)
        message.publish_packet = packet

    async def _handle_qos1_message_flow(
        self, app_message: OutgoingApplicationMessage | IncomingApplicationMessage
    ) -> None:
        if app_message.direction != OUTGOING or app_message.qos != QOS_1:
            await super()._handle_qos1_message_flow(app_message)
            return
        assert self.session is not None
        assert isinstance(app_message, OutgoingApplicationMessage)
        packet_id = app_message.packet_id
        self._keep_in_flight(app_message)
        send = self._send_publish(app_message)
        app_message.puback_packet = await self._send_and_wait(send, self._puback_waiters, packet_id)
        self.session.inflight_out.pop(packet_id, None)

    async def _handle_qos2_message_flow(
        self, app_message: OutgoingApplicationMessage | IncomingApplicationMessage
    ) -> None:
        if app_message.direction != OUTGOING or app_message.qos != QOS_2:
            await super()._handle_qos2_message_flow(app_message)
            return
        assert self.session is not None
        assert isinstance(app_message, OutgoingApplicationMessage)
        packet_id = app_message.packet_id
        if app_message.pubrel_packet is None:
            self._keep_in_flight(app_message)
            send = self._send_publish(app_message)
            app_message.pubrec_packet = await self._send_and_wait(send, self._pubrec_waiters, packet_id)
            seq = getattr(app_message, "seq", None)
            if seq is not None and self.journal is not None:  # after a restart, PUBREL is what is resent
                await self.journal.released(self.session.client_id, seq)
            app_message.pubrel_packet = PubrelPacket.build(packet_id)
        self.session.inflight_out[packet_id] = app_message
        send = self._send_packet(app_message.pubrel_packet)
        app_message.pubcomp_packet = await self._send_and_wait(send, self._pubcomp_waiters, packet_id)
        self.session.inflight_out.pop(packet_id, None)
