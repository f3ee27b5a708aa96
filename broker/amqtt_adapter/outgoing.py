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
import time
from collections.abc import Coroutine
from typing import Any

from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import OUTGOING, IncomingApplicationMessage, OutgoingApplicationMessage

from broker.amqtt_adapter.outbox import Outbox
from broker.mqtt.message_properties import MessageProperties, property_block
from broker.mqtt.v5_packets import encode_publish5
from broker.persistence.journal import Journal

__all__ = ["ConnectionClosing", "DirectMessage", "Expired", "OutgoingCopy", "OutgoingFlows", "Refused"]

log = logging.getLogger("edgemq.mqtt")


class ConnectionClosing(ConnectionError):
    """A delivery that starts once the connection is closing. A QoS 1/2 copy for a persistent
    session stays in its ``inflight_out`` (resent when the session resumes, counted as dropped if
    the session is discarded); any other copy is lost."""


class OutgoingCopy(OutgoingApplicationMessage):
    """An outgoing message; ``seq`` names its row in the store (None: not persisted). For MQTT 5
    clients: its properties and the identifiers of the subscriptions it matched."""

    __slots__ = ("properties", "seq", "subscription_ids", "written")

    def __init__(
        self,
        packet_id: int | None,
        topic: str,
        qos: int | None,
        data: bytes | bytearray,
        retain: bool,
        seq: int | None,
        properties: MessageProperties | None = None,
        subscription_ids: tuple[int, ...] = (),
    ) -> None:
        super().__init__(packet_id, topic, qos, data, retain)
        self.seq = seq
        self.properties, self.subscription_ids = properties, subscription_ids
        self.written = False
        """Sent as MQTT 5 bytes at least once (a resend then has DUP=1)."""


class DirectMessage(OutgoingCopy):
    """An outgoing QoS 1 message written through the outbox; it waits for its PUBACK without a task."""

    __slots__ = ()


class Expired(Exception):
    """A copy whose message expired before it could be sent, or too large for an MQTT 5 client's
    Maximum Packet Size: dropped (counted)."""


class Refused(Exception):
    """An MQTT 5 client refused a QoS 2 copy (PUBREC with a reason code of 0x80 or more)."""


class OutgoingFlows(BrokerProtocolHandler):
    """The outgoing half of ``EdgeHandler`` (its base class)."""

    _stopping = False
    outbox: Outbox | None = None
    """Set by the Connection for TCP connections: direct writes (see Outbox)."""
    unacknowledged = 0
    """MQTT 5: QoS 1/2 PUBLISHes written and not yet finally acknowledged (Receive Maximum)."""
    _quota_waiter: asyncio.Future[None] | None = None  # the next copy waiting for the client's Receive Maximum
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
        self.one_acknowledged()
        waiter.set_result(packet)

    def pubrec_refused(self, packet_id: int) -> None:
        """An MQTT 5 PUBREC with a failure reason code: the copy's delivery ends (no PUBREL)."""
        waiter = self._pubrec_waiters.get(packet_id)
        if waiter is None or waiter.done() or self.session is None:
            return
        self.forget_copy(self.session.inflight_out.pop(packet_id, None))
        self.one_acknowledged()
        waiter.set_exception(Refused(f"PUBREC refused message {packet_id}"))

    def _wake_quota_waiter(self) -> None:
        waiter = self._quota_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def one_acknowledged(self) -> None:
        """One fewer copy unacknowledged: the next one waiting for the Receive Maximum may go."""
        if self.session is None or getattr(self.session, "v5", None) is None:
            return
        self.unacknowledged -= 1
        self._wake_quota_waiter()

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
        properties: MessageProperties | None = None,
        subscription_ids: tuple[int, ...] = (),
    ) -> OutgoingApplicationMessage:
        """amqtt's, with the copy's row in the store (``seq``) and no time limit (see the class)."""
        assert self.session is not None
        packet_id = self.session.next_packet_id if qos else None
        message = OutgoingCopy(packet_id, topic, qos, data, retain, seq, properties, subscription_ids)
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
        resent = resent or getattr(message, "written", False)
        seq = getattr(message, "seq", None)
        durable: asyncio.Future[None] | None = None
        if not resent and seq is not None and self.journal is not None and message.packet_id is not None:
            # its packet id is kept, so that it is resent as the same message after a restart;
            # a QoS 2 one is sent only then (a new id would make the receiver take it twice)
            sent = self.journal.sent(self.session.client_id, seq, message.packet_id)
            durable = sent if message.qos == QOS_2 else None
        before = self._publish_tail
        full = self._receive_maximum_reached()
        if durable is None and not full and (before is None or before.done()):
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
            while self._receive_maximum_reached():
                if self._stopping:
                    raise ConnectionClosing("the connection is closing")
                self._quota_waiter = asyncio.get_running_loop().create_future()
                await self._quota_waiter
            await self._write_publish(message, resent)
        finally:
            mine.set_result(None)

    def _receive_maximum_reached(self) -> bool:
        """MQTT 5: whether the client has as many copies unacknowledged as it takes."""
        terms = getattr(self.session, "v5", None)
        return terms is not None and self.unacknowledged >= terms.receive_maximum

    async def _write_publish(self, message: OutgoingApplicationMessage, resent: bool) -> None:
        assert self.session is not None
        self.session.inflight_out[message.packet_id] = message
        if getattr(self.session, "v5", None) is not None:
            await self._write_v5(message, resent)
            self.unacknowledged += 1
            return
        packet = message.build_publish_packet(dup=resent)
        await self._send_packet(packet)
        message.publish_packet = packet

    async def _write_v5(self, message: OutgoingApplicationMessage, resent: bool) -> None:
        """Write a copy to an MQTT 5 client as bytes: with its properties (the expiry interval
        reduced by the time it waited) and subscription identifiers; one that expired before it
        was first sent, or larger than the client takes, is dropped (Expired)."""
        assert self.session is not None
        terms = getattr(self.session, "v5", None)
        now = time.time()
        properties = getattr(message, "properties", None)
        if not resent and properties is not None and properties.expired(now):
            self.session.inflight_out.pop(message.packet_id, None)
            self.forget_copy(message)
            raise Expired(f"message on {message.topic} expired before it was sent")
        block = property_block(properties, now, getattr(message, "subscription_ids", ()))
        qos = message.qos or 0
        packet = encode_publish5(
            message.topic, bytes(message.data), qos, message.packet_id or 0, message.retain, block, dup=resent
        )
        if terms is not None and terms.maximum_packet_size and len(packet) > terms.maximum_packet_size:
            self.session.inflight_out.pop(message.packet_id, None)
            self.forget_copy(message)
            raise Expired(f"message on {message.topic} larger than the client's Maximum Packet Size")
        await self.write_bytes(packet)
        if isinstance(message, OutgoingCopy):
            message.written = True

    async def write_bytes(self, packet: bytes) -> None:
        """Write an encoded packet after what the outbox holds (through it for TCP)."""
        if self.outbox is not None:
            self.outbox.put(packet)
        elif self.writer is not None:
            async with self._write_lock:
                self.writer.write(packet)
                await self.writer.drain()

    async def _handle_qos0_message_flow(
        self, app_message: OutgoingApplicationMessage | IncomingApplicationMessage
    ) -> None:
        if app_message.direction == OUTGOING and getattr(self.session, "v5", None) is not None:
            assert isinstance(app_message, OutgoingApplicationMessage)
            await self._write_v5(app_message, False)
            return
        await super()._handle_qos0_message_flow(app_message)

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
        if app_message.pubrel_packet is not None and getattr(self.session, "v5", None) is not None:
            self.unacknowledged += 1  # a PUBREL resent: its PUBCOMP ends it (and counts it off)
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
