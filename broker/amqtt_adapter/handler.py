"""amqtt's protocol handler, with edgemq's reading, CONNECT, keep-alive and QoS 1/2 delivery rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from amqtt.adapters import BufferReader, ReaderAdapter, WriterAdapter
from amqtt.errors import MQTTError
from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.connack import CONNECTION_ACCEPTED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.pingreq import PingReqPacket
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.mqtt.suback import SubackPacket
from amqtt.mqtt.unsuback import UnsubackPacket
from amqtt.plugins.manager import PluginManager
from amqtt.session import Session

from broker.amqtt_adapter.outgoing import OutgoingFlows
from broker.amqtt_adapter.session import connect_refusal, session_from_connect
from broker.faults import Faults
from broker.mqtt.framing import ProtocolViolation, encode_suback, encode_unsuback, parse_connect
from broker.mqtt.properties import Properties
from broker.mqtt.v5_packets import encode_connack5
from broker.mqtt.v5_session import v5_refusal

if TYPE_CHECKING:
    from amqtt.broker import BrokerContext

    from broker.amqtt_adapter.connection import Connection

__all__ = ["EdgeHandler", "write_refusal"]

log = logging.getLogger("edgemq.mqtt")

_CONNACK = 0x20
_PINGRESP = b"\xd0\x00"
_PUBACK = 0x40
# the acknowledgement a received PUBLISH (QoS 1, 2) or PUBREL gets, as packet type and amqtt's class
_ACKS: dict[int, tuple[int, Any]] = {1: (0x40, PubackPacket), 2: (0x50, PubrecPacket), 6: (0x70, PubcompPacket)}
_PACKET_IDS = 65535
_MQTT_5 = 5


async def write_refusal(writer: WriterAdapter, level: int, code: int) -> None:
    """Refuse a CONNECT: CONNACK with ``code`` (a 3.1.1 return code; an MQTT 5 client gets the
    reason code that says the same), then close."""
    if level == _MQTT_5:
        writer.write(encode_connack5(False, v5_refusal(code), Properties()))
    else:
        writer.write(bytes((_CONNACK, 2, 0, code)))
    await writer.drain()
    await writer.close()


def _listens(plugins_manager: PluginManager[Any], event: MQTTEvents) -> bool:
    """Whether a loaded plugin handles ``event`` (amqtt keeps that table privately; assume so
    if it is not there)."""
    callbacks = getattr(plugins_manager, "_event_plugin_callbacks", None)
    return callbacks is None or event in callbacks


class EdgeHandler(OutgoingFlows):
    """Keep-alive is enforced; outgoing QoS 1/2 messages stay in flight until acknowledged.

    amqtt drops an outgoing message after a fixed 5 s without acknowledgement (and QoS 2 after
    PUBREC), and blocks the session for up to 10 s retrying. Here a message stays in
    ``session.inflight_out`` until its PUBACK/PUBCOMP; if the connection ends first it is
    resent with DUP=1 when the session resumes (MQTT 4.4), in the background.
    """

    # amqtt's handler attributes that start empty, as class defaults (an instance sets only what
    # it changes); amqtt's SUBSCRIBE/UNSUBSCRIBE queues and reader events are not made (the
    # Connection reads and applies those packets itself).
    logger: Any = logging.getLogger("amqtt.mqtt.protocol.handler")
    session: Session | None = None
    reader: ReaderAdapter | None = None
    writer: WriterAdapter | None = None
    keepalive_timeout: int | None = None
    _reader_task: asyncio.Task[None] | None = None
    _keepalive_task: asyncio.TimerHandle | None = None
    _reader_ready: asyncio.Event | None = None
    _disconnect_waiter: asyncio.Future[DisconnectPacket | None] | None = None
    # edgemq's
    _to_retry: Sequence[Any] = ()
    _handlers: dict[type, Callable[[Any], Coroutine[Any, Any, None]]] | None = None
    connection: Connection | None = None
    """Set by the Connection that serves this handler (until it stops)."""

    def __init__(
        self,
        plugins_manager: PluginManager[BrokerContext],
        session: Session | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.plugins_manager = plugins_manager
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._puback_waiters: dict[int, asyncio.Future[Any]] = {}
        self._pubrec_waiters: dict[int, asyncio.Future[Any]] = {}
        self._pubrel_waiters: dict[int, asyncio.Future[Any]] = {}
        self._pubcomp_waiters: dict[int, asyncio.Future[Any]] = {}
        self._write_lock = asyncio.Lock()
        if session is not None:
            self._init_session(session)
        self._background: set[asyncio.Future[Any]] = set()
        self.ended: asyncio.Future[DisconnectPacket | None] = self._loop.create_future()
        """The DISCONNECT packet, or None when the connection ended without one. Unlike amqtt's
        ``wait_disconnect`` it holds the outcome even if that came before anyone waited."""

    def _init_session(self, session: Session) -> None:
        """amqtt's, without a LoggerAdapter per connection (amqtt's debug lines keep its logger)."""
        self.session = session
        self.keepalive_timeout = session.keep_alive if session.keep_alive > 0 else None

    async def handle_disconnect(self, disconnect: DisconnectPacket | None) -> None:
        """Record how the connection ended (first outcome wins), then let amqtt do its part.

        Ended from elsewhere (take-over, kick, keep-alive), the connection's reading stops too."""
        if not self.ended.done():
            self.ended.set_result(disconnect)
            self._interrupt_reading()
        await super().handle_disconnect(disconnect)

    def _interrupt_reading(self) -> None:
        """Make the connection's reading end (an end decided by another task)."""
        if self.connection is not None:
            self.connection.interrupt_reading()

    async def handle_connect(self, connect: ConnectPacket) -> None:
        """A second CONNECT is a protocol violation (3.1.0-2): the connection ends as abnormal.
        A client fault, so logged at INFO (amqtt logs it as an ERROR)."""
        log.info("client %s sent a second CONNECT (3.1.0-2): closing", self.session.client_id if self.session else "?")
        await self.handle_disconnect(None)

    async def send_connack(self, session_present: int, properties: Properties | None = None) -> None:
        """Accept the CONNECT: the CONNACK goes into the outbox as bytes, unless a plugin
        listens for amqtt's sent-packet event, or for a websocket (then as amqtt's packet object).
        ``properties``: an MQTT 5 CONNACK's (amqtt's packet objects and events are MQTT 3.1.1's:
        an MQTT 5 connection's packets are always written as bytes)."""
        if properties is not None:
            await self.write_bytes(encode_connack5(bool(session_present), 0, properties))
            return
        if self.outbox is None or _listens(self.plugins_manager, MQTTEvents.PACKET_SENT):
            await self._send_packet(ConnackPacket.build(session_present, CONNECTION_ACCEPTED))
            return
        self.outbox.write_now(bytes((_CONNACK, 2, session_present, 0)))

    @classmethod
    async def from_connect(
        cls,
        raw: bytes,
        writer: WriterAdapter,
        plugins_manager: PluginManager[BrokerContext],
        faults: Faults | None = None,
    ) -> tuple[EdgeHandler, Session]:
        """amqtt's ``init_from_connect`` for a CONNECT already read whole: parsed by
        broker/mqtt/framing.py instead of amqtt's field-by-field awaited reads, refused like
        amqtt does (or as a refuse_connects fault says), accepted with an ``EdgeSession``."""
        if _listens(plugins_manager, MQTTEvents.PACKET_RECEIVED):  # amqtt's packet only if a plugin wants it
            packet = await ConnectPacket.from_stream(BufferReader(raw))
            await plugins_manager.fire_event(MQTTEvents.PACKET_RECEIVED, packet=packet)
        try:
            connect = parse_connect(raw)
        except ProtocolViolation as exc:
            raise MQTTError(str(exc)) from None
        code = connect_refusal(connect)
        refusal = faults.connect_refusal() if code is None and faults is not None and faults.active else None
        if refusal is not None:
            refusal.take()
            log.info("client refused by a fault: client_id=%s", connect.client_id)
            code = refusal.code
            if code is None:
                await writer.close()
                raise MQTTError("CONNECT refused by a fault: closed without a CONNACK")
        if code is not None:
            if connect.level != _MQTT_5:
                await plugins_manager.fire_event(MQTTEvents.PACKET_SENT, packet=ConnackPacket.build(0, code))
            await write_refusal(writer, connect.level, code)
            raise MQTTError(f"CONNECT refused with return code {code:#x}")
        return cls(plugins_manager), session_from_connect(connect, writer)

    async def start(self) -> None:
        """Resend what was in flight; the connection's task then reads with ``serve``. Unlike
        amqtt: no reader task (one task per connection, not two) and no write-timeout timer (a
        no-op for a broker, yet re-armed on every packet sent)."""
        assert self.session is not None, "start() before attach()"
        self.resend_in_flight()

    def resend_in_flight(self) -> None:
        """Resend, each in the background, what ``remember_in_flight`` noted (MQTT 4.4)."""
        to_retry, self._to_retry = self._to_retry, ()
        for message in to_retry:
            self._spawn(self._handle_message_flow(message))

    def remember_in_flight(self) -> None:
        """Note what is in flight to the client from an earlier connection: that, and only that, is
        resent. Received QoS 2 messages were routed already; the client resends their PUBREL."""
        assert self.session is not None
        if self.session.inflight_out:
            self._to_retry = list(self.session.inflight_out.values())

    async def stop(self) -> None:
        """amqtt's stop (acknowledgement waiters cancelled, reader stopped, writer closed), and
        deliveries started from now on fail at once instead of waiting forever.

        What the outbox holds (PUBACKs included) is written before the connection closes, and
        the connection is dropped so the ended handler does not wait for the cyclic
        garbage collector."""
        self._stopping = True
        self._wake_quota_waiter()  # a copy waiting for the client's Receive Maximum ends now
        if self.outbox is not None:
            self.outbox.flush()
        for waiters in (self._puback_waiters, self._pubrec_waiters, self._pubrel_waiters, self._pubcomp_waiters):
            for waiter in waiters.values():
                waiter.cancel()
        self._interrupt_reading()  # stopped from elsewhere while the connection's task reads
        try:
            if self.writer is not None:
                await self.writer.close()
        except (asyncio.CancelledError, TimeoutError, OSError) as exc:  # as amqtt: closing is best effort
            log.debug("closing the connection of %s failed: %r", self.session.client_id if self.session else "?", exc)
        if self._disconnect_waiter is not None and not self._disconnect_waiter.done():
            self._disconnect_waiter.set_result(None)
        self._disconnect_waiter = None
        self.connection = None
        self._handlers = None

    async def _send_packet(self, packet: Any) -> None:
        """amqtt's write, after what the outbox holds, so bytes leave in the order they were made."""
        if self.outbox is not None:
            self.outbox.flush()
        await super()._send_packet(packet)

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` has begun: nothing more is sent or handled."""
        return self._stopping

    async def dispatch_raw(self, raw: bytes) -> None:
        """Handle a packet the connection does not handle itself, as amqtt's packet object."""
        await self._dispatch(await self.show_received(raw))

    async def show_received(self, raw: bytes) -> Any:
        """amqtt's packet object for ``raw``, shown to the plugins (amqtt's packet-received event)."""
        buffer = BufferReader(raw)
        header = await MQTTFixedHeader.from_stream(buffer)
        packet = await packet_class(header).from_stream(buffer, fixed_header=header)
        await self.plugins_manager.fire_event(MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session)
        return packet

    def plugins_see(self, event: MQTTEvents) -> bool:
        """Whether a loaded plugin handles ``event`` (then packets are made as amqtt's objects)."""
        return _listens(self.plugins_manager, event)

    async def disconnect_received(self) -> None:
        """The client sent DISCONNECT (read by the Connection): a graceful end."""
        await self.handle_disconnect(DisconnectPacket())

    async def ping_received(self) -> None:
        """The client sent PINGREQ (read by the Connection): PINGRESP, through the outbox if there is one."""
        if self.outbox is None or _listens(self.plugins_manager, MQTTEvents.PACKET_SENT):
            await self.handle_pingreq(PingReqPacket())
        else:
            self.outbox.put(_PINGRESP)

    async def acknowledge_subscription(self, packet_id: int, return_codes: list[int]) -> None:
        """SUBACK: into the outbox as bytes, or as amqtt's packet for a websocket or a plugin."""
        if self.outbox is None or _listens(self.plugins_manager, MQTTEvents.PACKET_SENT):
            await self._send_packet(SubackPacket.build(packet_id, return_codes))
        else:
            self.outbox.put(encode_suback(packet_id, return_codes))

    async def acknowledge_unsubscription(self, packet_id: int) -> None:
        """UNSUBACK, like ``acknowledge_subscription``."""
        if self.outbox is None or _listens(self.plugins_manager, MQTTEvents.PACKET_SENT):
            await self._send_packet(UnsubackPacket.build(packet_id))
        else:
            self.outbox.put(encode_unsuback(packet_id))

    async def _dispatch(self, packet: Any) -> None:
        if self._handlers is None:
            self._handlers = self._packet_handlers()
        handler = self._handlers.get(type(packet))
        if handler is not None:
            await handler(packet)

    def _packet_handlers(self) -> dict[type, Callable[[Any], Coroutine[Any, Any, None]]]:
        return {
            PubackPacket: self.handle_puback,
            PubrecPacket: self.handle_pubrec,
            PubrelPacket: self.handle_pubrel,
            PubcompPacket: self.handle_pubcomp,
            PingReqPacket: self.handle_pingreq,
            DisconnectPacket: self.handle_disconnect,
            ConnectPacket: self.handle_connect,
        }

    async def acknowledge(self, kind: int, packet_id: int) -> None:
        """PUBACK or PUBREC for a received PUBLISH of QoS ``kind``, PUBCOMP for a PUBREL (``kind``
        6): through the outbox where there is one, else as amqtt's packet."""
        first, packet_class_ = _ACKS[kind]
        if self.outbox is not None:
            self.outbox.put(bytes((first, 2)) + packet_id.to_bytes(2, "big"))
        else:
            await self._send_packet(packet_class_.build(packet_id))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("background delivery ended: %r", task.exception())
