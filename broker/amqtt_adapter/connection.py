"""``Connection``: one client's network connection, from its accepted CONNECT to its end.

It owns what lives as long as the connection: the reader and its task, the outbox, the copies
routed to the client and not finished (count, bytes, the QoS 0 ones a full queue may drop),
the QoS 1 copies written directly and waiting for their PUBACK, the keep-alive timer and the
reason the server ended it. It reads every packet in the connection's own task (``serve``) and
hands what it reads to the router in one direction; the router hands copies back through
``deliver``. amqtt's protocol handler (``EdgeHandler``) stays for what amqtt does well: QoS 2
flows, resending, SUBSCRIBE bookkeeping and the packets plugins want to see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from amqtt.adapters import WriterAdapter
from amqtt.events import MQTTEvents
from amqtt.mqtt.constants import QOS_1
from amqtt.session import IncomingApplicationMessage, Session

from broker.amqtt_adapter.delivery_queue import DeliveryQueue
from broker.amqtt_adapter.framed_reader import FramedReader
from broker.amqtt_adapter.handler import EdgeHandler
from broker.amqtt_adapter.held_acks import ACK_TYPES, HeldAcknowledgements, held_ack
from broker.amqtt_adapter.mqtt5_connection import Mqtt5Connection
from broker.amqtt_adapter.outbox import Outbox, RoutedCopy
from broker.amqtt_adapter.session import EdgeSession
from broker.clock import Clock, Timer
from broker.config.settings import Mqtt
from broker.faults import DelayLine, Faults
from broker.mqtt.framing import (
    encode_publish,
    is_publish,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
    pubrel_id,
)
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.v5_packets import Subscription5
from broker.persistence.journal import Journal

__all__ = ["Connection", "PacketSink"]

log = logging.getLogger("edgemq.mqtt")

_PUBACK = 0x40
_DUP = 0x08  # the DUP flag in a PUBLISH's first byte (3.3.1.1)
_SUBSCRIBE, _UNSUBSCRIBE = 0x82, 0xA2
_DISCONNECT, _PINGREQ = b"\xe0\x00", b"\xc0\x00"
_BARE = (_DISCONNECT, _PINGREQ)  # packets without a body, handled without amqtt's packet objects


class PacketSink(Protocol):
    """Where a connection's reader sends what changes the broker (the router)."""

    async def accept_publish(
        self,
        connection: Connection,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: MessageProperties | None = None,
    ) -> bool:
        """Route a PUBLISH read whole; a QoS 1 or 2 one is then acknowledged (once what routing
        wrote to the journal is committed). False closes."""

    async def subscribe(self, connection: Connection, packet_id: int, filters: list[tuple[str, int]]) -> None:
        """Apply a SUBSCRIBE and acknowledge it, before the next packet is read."""

    async def unsubscribe(self, connection: Connection, packet_id: int, filters: list[str]) -> None:
        """Apply an UNSUBSCRIBE and acknowledge it, before the next packet is read."""

    async def subscribe5(
        self, connection: Connection, packet_id: int, identifier: int | None, filters: list[Subscription5]
    ) -> None:
        """Apply an MQTT 5 SUBSCRIBE and acknowledge it, before the next packet is read."""


class Connection(Mqtt5Connection, DeliveryQueue, HeldAcknowledgements):
    """One client connection (see the module docstring)."""

    def __init__(
        self,
        handler: EdgeHandler,
        session: Session,
        reader: FramedReader,
        writer: WriterAdapter,
        clock: Clock,
        on_dropped: Callable[[int], None],
        faults: Faults,
        journal: Journal | None = None,
    ) -> None:
        self.handler, self.session, self.reader, self.writer = handler, session, reader, writer
        self.v5 = session.v5 if isinstance(session, EdgeSession) else None
        reader.v5 = self.v5 is not None
        self.journal = journal
        """The broker's journal (None: nothing persists); acknowledgements wait for its commits."""
        self._saved = journal if journal is not None and not session.clean_session else None
        handler.journal = self._saved  # this session's copies have rows in the store
        self.task: asyncio.Task[Any] | None = reader.task
        self.outbox = Outbox(reader.transport) if reader.transport is not None else None
        self._clock = clock
        self._on_dropped = on_dropped
        self._faults = faults
        handler.outbox = self.outbox  # the handler's own writes go after what the outbox holds
        handler.connection = self
        self.count = 0
        """Copies routed here and not finished (written and acknowledged, or failed)."""
        self.size = 0
        """Their payload bytes."""
        self._qos0: dict[asyncio.Future[Any], int] = {}  # unfinished QoS 0 copies, oldest first: size
        self._deliveries: set[asyncio.Future[Any]] = set()
        self._evicted: set[asyncio.Future[Any]] = set()
        self._direct: set[int] = set()  # packet ids of QoS 1 copies written directly, awaiting PUBACK
        self.direct_bytes = 0
        self.keep_alive_allowance = 0.0
        """Seconds of silence after which ``serve`` closes the connection (0: never)."""
        self._last_read = 0.0
        self._keep_alive: Timer | None = None
        self._reading: asyncio.Task[Any] | None = None
        self.end_reason: str | None = None
        """Why the server ends the connection (kick, take-over, keep-alive), for the log."""
        self.ended = False
        self.is_closed = False
        self._closed: asyncio.Future[None] | None = None  # made only when someone waits

    delay_line: DelayLine | None = None
    """The copies delay faults hold back (fault_points.py); handed to the session at the end."""

    @property
    def client_id(self) -> str:
        return str(self.session.client_id)

    # -- end -------------------------------------------------------------------------------

    def mark_closed(self) -> None:
        """The connection is over: wake whoever waits in ``wait_closed``."""
        self.is_closed = True
        if self.delay_line is not None and (lost := self.delay_line.close()):
            self._on_dropped(lost)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until ``mark_closed``."""
        if self.is_closed:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)  # one waiter's cancellation leaves it for the others

    def interrupt_reading(self) -> None:
        """Make ``serve`` end if another task is in it (a call from ``serve`` itself needs none)."""
        reading = self._reading
        if reading is not None and reading is not asyncio.current_task():
            self.reader.interrupt()

    # -- reading ---------------------------------------------------------------------------

    async def serve(self, sink: PacketSink) -> None:
        """Read and handle packets until the connection ends, in the connection's own task.

        Every PUBLISH is routed before the next packet is read (QoS 2 ones too: their id is kept
        until PUBREL, so a resent one is not routed twice, and every PUBREL gets its PUBCOMP);
        SUBSCRIBE and UNSUBSCRIBE are read here (amqtt's packet objects only if a plugin wants
        them) and applied in packet order; keep-alive is one timer re-armed
        from the time of the last packet. An end decided elsewhere interrupts the reading.
        """
        handler, clock = self.handler, self._clock
        self._reading = self.task or asyncio.current_task()
        allowance = self.keep_alive_allowance
        self._last_read = clock.time()
        if allowance:
            self._keep_alive = clock.call_later(allowance, self._check_keep_alive, allowance)
        try:
            await (self._read5(sink) if self.v5 is not None else self._read(sink))
        except Exception as exc:  # a packet amqtt cannot decode or handle ends this connection only
            if self.v5 is None:
                log.debug("client %s: reading ended: %r", self.session.client_id, exc)
            else:  # edgemq reads every MQTT 5 packet itself: anything unexpected is its own fault
                log.warning("client %s: reading ended by an error", self.session.client_id, exc_info=True)
                self.tell_closing(0x83)  # implementation specific error
        finally:
            self._reading = None
            if self._keep_alive is not None:
                self._keep_alive.cancel()
            await handler.handle_connection_closed()
        await handler.stop()

    async def _read(self, sink: PacketSink) -> None:
        """Read MQTT 3.1.1 packets until the connection ends (see ``serve``)."""
        handler, reader, clock = self.handler, self.reader, self._clock
        while not handler.ended.done():  # DISCONNECT or a second CONNECT: nothing after it counts
            raw = await reader.next_raw()
            if raw is None or handler.ended.done():
                break  # end of stream, a packet the framing reader refused, or ended meanwhile
            self._last_read = clock.time()
            if is_publish(raw):  # straight to routing (no amqtt packet)
                if handler.stopping or not await self._take_publish(sink, *parse_publish(raw)):
                    break
                continue
            released = pubrel_id(raw)
            if released is not None:
                await self._release(released)
                continue
            if self._direct and self._acknowledged_directly(raw):
                continue
            if raw[0] in (_SUBSCRIBE, _UNSUBSCRIBE):
                if handler.stopping:
                    break  # ending: a subscription now would outlive its session
                if handler.plugins_see(MQTTEvents.PACKET_RECEIVED):
                    await handler.show_received(raw)
                if raw[0] == _SUBSCRIBE:
                    await sink.subscribe(self, *parse_subscribe(raw))
                else:
                    await sink.unsubscribe(self, *parse_unsubscribe(raw))
                continue
            if raw in _BARE and not handler.plugins_see(MQTTEvents.PACKET_RECEIVED):
                await (handler.disconnect_received() if raw == _DISCONNECT else handler.ping_received())
                continue
            await handler.dispatch_raw(raw)

    async def _take_publish(
        self,
        sink: PacketSink,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        packet_id: int,
        properties: MessageProperties | None = None,
    ) -> bool:
        """Route a PUBLISH read whole, then acknowledge it; False ends the connection.

        Every PUBLISH is routed before the next packet is read (QoS 2 ones too: their id is kept
        until PUBREL, so a resent one is not routed twice, and every PUBREL gets its PUBCOMP).
        """
        session, journal, faults = self.session, self.journal, self._faults
        durable = None
        if qos < 2 or packet_id not in session.inflight_in:  # a resent QoS 2 one is not routed again
            scope = journal.begin() if journal is not None else None
            try:
                if not await sink.accept_publish(self, topic, payload, qos, retain, properties):
                    return False
                if qos == 2:  # routed at once; its id is kept until PUBREL (4.3.3, method B)
                    session.inflight_in[packet_id] = IncomingApplicationMessage(packet_id, topic, 2, b"", retain)
                    if self._saved is not None:
                        self._saved.incoming(session.client_id, packet_id)
            finally:  # what the PUBLISH changed is one batch: durable all together or not at all
                if journal is not None and scope is not None:
                    durable = journal.end(scope)
        if qos:  # acknowledged once routed and what routing wrote is committed: PUBACK or PUBREC
            if faults.active and qos == 1:
                durable = held_ack(faults, session.client_id, durable)
            if durable is None and not self._held and self.outbox is not None:
                self.outbox.put(bytes((ACK_TYPES[qos], 2)) + packet_id.to_bytes(2, "big"))
            else:
                await self._acknowledge(qos, packet_id, durable)
        return True

    async def _release(self, packet_id: int) -> bool:
        """A PUBREL: PUBCOMP even for an id not held (its PUBCOMP was lost, 4.3.3); whether it was."""
        session, saved = self.session, self._saved
        held = session.inflight_in.pop(packet_id, None) is not None
        durable = saved.incoming_released(session.client_id, packet_id) if saved is not None else None
        if self._faults.active:
            durable = held_ack(self._faults, session.client_id, durable)
        await self._acknowledge(6, packet_id, durable)
        return held

    def _check_keep_alive(self, allowance: float) -> None:
        silent = self._clock.time() - self._last_read
        if silent < allowance:
            self._keep_alive = self._clock.call_later(allowance - silent, self._check_keep_alive, allowance)
            return
        # no packet within the allowance: close as an abnormal disconnect (3.1.2.10)
        self.end_reason = "keep-alive expired"
        self.tell_closing(0x8D)
        self._spawn(self.handler.handle_connection_closed())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    # -- delivering ------------------------------------------------------------------------

    def deliver(
        self,
        message: RoutedCopy,
        qos: int,
        limits: Mqtt,
        seq: int | None = None,
        *,
        retain: bool = False,
        subscription_ids: Sequence[int] = (),
    ) -> bool:
        """Send one routed copy: written at once if the client keeps up, else in the background;
        False if the client's queue is full (the copy is dropped: the caller counts it). A copy
        with a ``seq`` is written to the journal (a persistent session's QoS 1/2 copy). MQTT 5:
        with the retain flag kept (retain as published) and the matched subscription ids."""
        if self.v5 is not None:
            return self._deliver5(message, qos, limits, seq, retain, tuple(subscription_ids))
        if not self.count and self._send_now(message, qos, limits, seq):
            return True
        return self._queue(message, qos, limits, seq)

    def _send_now(self, message: RoutedCopy, qos: int, limits: Mqtt, seq: int | None) -> bool:
        """Write a copy through the outbox, without a task, if the client keeps up; False if not.

        QoS 0 copies, and QoS 1 ones while fewer than ``max_mqueue_len`` of the session's copies
        (and fewer than there are packet ids, and their payloads within ``max_mqueue_bytes``) wait
        for their PUBACK. A QoS 1 copy stays in ``session.inflight_out`` until its PUBACK; if the
        connection ends first it is resent with DUP=1 when the session resumes (MQTT 4.4).
        """
        outbox = self.outbox
        if outbox is None or qos > QOS_1 or self.handler.stopping or not outbox.has_room():
            return False
        if qos == 0:
            outbox.put(message.qos0_packet())
            return True
        if not self._room_in_flight(len(message.data), limits):
            return False
        packet_id = self._in_flight_directly(message, seq)
        outbox.put(encode_publish(message.topic, message.data, qos=QOS_1, packet_id=packet_id))
        return True

    def _persist_queued(self, seq: int | None, message: RoutedCopy, qos: int, packet_id: int | None = None) -> None:
        """A persistent session's copy gets its row in the store (``seq``: its message's number)."""
        if seq is not None and self._saved is not None:
            self._saved.queued(
                self.client_id, seq, message.topic, message.data, qos, packet_id, properties=message.properties
            )

    def deliver_twice(self, message: RoutedCopy, limits: Mqtt, seq: int | None) -> bool:
        """Write a QoS 1 copy at once, then again with DUP=1 and the same packet id (a duplicate
        fault, MQTT 3.1.1 connections only); False if it cannot be written at once (nothing was sent)."""
        if self.v5 is not None or self.count or self.outbox is None or not self._send_now(message, QOS_1, limits, seq):
            return False
        packet_id = next(reversed(self.session.inflight_out))  # the one _send_now just added
        packet = encode_publish(message.topic, message.data, qos=QOS_1, packet_id=packet_id)
        self.outbox.put(bytes((packet[0] | _DUP,)) + packet[1:])
        return True

    def _acknowledged_directly(self, packet: bytes) -> bool:
        """A PUBACK for a copy written through the outbox: forget the copy (True), or False."""
        if len(packet) != 4 or packet[0] != _PUBACK:
            return False
        packet_id = int.from_bytes(packet[2:4], "big")
        if packet_id not in self._direct:
            return False
        self._direct.discard(packet_id)
        acknowledged = self.session.inflight_out.pop(packet_id, None)
        self.handler.one_acknowledged()
        if acknowledged is not None:
            self.direct_bytes -= len(acknowledged.data)
            self.handler.forget_copy(acknowledged)
        return True
