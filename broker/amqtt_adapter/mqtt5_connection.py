"""``Mqtt5Connection``: the MQTT 5 half of ``Connection`` (a base class of it).

An MQTT 5 connection shares the sessions, the router, the outbox and the acknowledgement
bookkeeping of MQTT 3.1.1 ones; what differs is read and written here: packets with properties and
reason codes (v5_packets.py), topic aliases from the client, the broker's Receive Maximum for QoS 2
PUBLISHes, the client's Receive Maximum and Maximum Packet Size for what the broker sends, and a
DISCONNECT with a reason code before the broker closes on a protocol error (4.13).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from amqtt.session import Session

from broker.amqtt_adapter.outbox import RoutedCopy
from broker.config.settings import Mqtt
from broker.mqtt.framing import ProtocolViolation
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import PROTOCOL_ERROR, Properties
from broker.mqtt.v5_packets import (
    NO_PUBLISH_PROPERTIES,
    encode_disconnect5,
    parse_ack5,
    parse_disconnect5,
    parse_publish5,
    parse_subscribe5,
    parse_unsubscribe5,
)
from broker.mqtt.v5_session import ServerLimits, V5Connect

if TYPE_CHECKING:
    from broker.amqtt_adapter.connection import PacketSink
    from broker.amqtt_adapter.framed_reader import FramedReader
    from broker.amqtt_adapter.handler import EdgeHandler
    from broker.amqtt_adapter.outbox import Outbox

__all__ = ["Mqtt5Connection"]

log = logging.getLogger("edgemq.mqtt")

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 3, 4, 5, 6, 7, 8, 10, 12, 14
_RECEIVE_MAXIMUM_EXCEEDED, _TOPIC_ALIAS_INVALID = 0x93, 0x94


class Mqtt5Connection:
    """Reading and writing for an MQTT 5 client (see the module docstring)."""

    v5: V5Connect | None = None
    """The connection's MQTT 5 terms (None: MQTT 3.1 or 3.1.1)."""
    limits5 = ServerLimits(65535, 268_435_455, 10, True)
    """What the broker told the client in its CONNACK (set by the broker at the CONNECT)."""

    if TYPE_CHECKING:  # the Connection's
        handler: EdgeHandler
        session: Session
        reader: FramedReader
        outbox: Outbox | None
        count: int
        _direct: set[int]
        _last_read: float
        _clock: Any

        async def _take_publish(
            self,
            sink: PacketSink,
            topic: str,
            payload: bytes,
            qos: int,
            retain: bool,
            packet_id: int,
            properties: MessageProperties | None = None,
        ) -> bool: ...

        async def _release(self, packet_id: int) -> bool: ...

        def _acknowledged_directly(self, packet: bytes) -> bool: ...

        def _spawn(self, coro: Any) -> None: ...

        def _queue(
            self, message: RoutedCopy, qos: int, limits: Mqtt, seq: int | None, retain: bool = False,
            subscription_ids: tuple[int, ...] = (),
        ) -> bool: ...  # fmt: skip

        def _room_in_flight(self, size: int, limits: Mqtt) -> bool: ...

        def _in_flight_directly(
            self, message: RoutedCopy, seq: int | None, retain: bool = False, subscription_ids: tuple[int, ...] = ()
        ) -> int: ...

    # -- reading ---------------------------------------------------------------------------

    async def _read5(self, sink: PacketSink) -> None:
        """Read MQTT 5 packets until the connection ends; a protocol error sends DISCONNECT with
        its reason code, then the connection closes (as abnormal: the will is published)."""
        handler, reader, session = self.handler, self.reader, self.session
        aliases: dict[int, str] = {}
        maximum = self.limits5.receive_maximum
        while not handler.ended.done():
            raw = await reader.next_raw()
            if raw is None or handler.ended.done():
                if reader.violation is not None:
                    await self._disconnect5(reader.violation.code)
                break
            self._last_read = self._clock.time()
            kind = raw[0] >> 4
            try:
                if kind == PUBLISH:
                    topic, payload, qos, retain, packet_id, read = parse_publish5(raw)
                    properties = None
                    if read is not NO_PUBLISH_PROPERTIES or not topic:  # the usual PUBLISH: nothing to look up
                        topic = self._topic(topic, read, aliases)
                        properties = MessageProperties.from_properties(read, time.time()) if read else None
                    if qos == 2 and packet_id not in session.inflight_in and len(session.inflight_in) >= maximum:
                        raise ProtocolViolation("QoS 2 PUBLISHes beyond Receive Maximum", _RECEIVE_MAXIMUM_EXCEEDED)
                    if handler.stopping or not await self._take_publish(
                        sink, topic, payload, qos, retain, packet_id, properties
                    ):
                        break
                elif kind in (PUBACK, PUBREC, PUBCOMP):
                    await self._acknowledged5(kind, raw)
                elif kind == PUBREL:
                    await self._release(parse_ack5(raw)[0])
                elif kind == SUBSCRIBE:
                    if handler.stopping:
                        break
                    await sink.subscribe5(self, *parse_subscribe5(raw))  # type: ignore[arg-type]
                elif kind == UNSUBSCRIBE:
                    if handler.stopping:
                        break
                    await sink.unsubscribe(self, *parse_unsubscribe5(raw))  # type: ignore[arg-type]
                elif kind == PINGREQ:
                    await handler.ping_received()
                elif kind == DISCONNECT:
                    await self._client_disconnect(*parse_disconnect5(raw))
                    break
                else:  # a second CONNECT (MQTT-3.1.0-2), AUTH never offered, or a server's packet
                    raise ProtocolViolation(f"packet type {kind} from a client", PROTOCOL_ERROR)
            except ProtocolViolation as exc:
                log.info("client %s: protocol error: %s", session.client_id, exc)
                await self._disconnect5(exc.code)
                break

    def _topic(self, topic: str, properties: Properties, aliases: dict[int, str]) -> str:
        """The PUBLISH's topic, set or looked up by its Topic Alias (3.3.2.3.4)."""
        alias = properties.get("topic_alias")
        if not isinstance(alias, int):
            if not topic:
                raise ProtocolViolation("PUBLISH without a topic or a topic alias (MQTT-3.3.2-1)", PROTOCOL_ERROR)
            return topic
        if alias > self.limits5.topic_alias_maximum:
            raise ProtocolViolation(f"topic alias {alias} above the maximum (MQTT-3.3.2-9)", _TOPIC_ALIAS_INVALID)
        if topic:
            aliases[alias] = topic
            return topic
        known = aliases.get(alias)
        if known is None:
            raise ProtocolViolation(f"topic alias {alias} not set on this connection (3.3.4)", PROTOCOL_ERROR)
        return known

    async def _acknowledged5(self, kind: int, raw: bytes) -> None:
        """A PUBACK, PUBREC or PUBCOMP: handled as its MQTT 3.1.1 form; a PUBREC with a reason
        code of 0x80 or more ends that message's delivery (4.3.3: no PUBREL follows)."""
        packet_id, reason = parse_ack5(raw)
        short = bytes((raw[0], 2)) + packet_id.to_bytes(2, "big")
        if kind == PUBREC and reason >= 0x80:
            self.handler.pubrec_refused(packet_id)
        elif not (kind == PUBACK and self._direct and self._acknowledged_directly(short)):
            await self.handler.dispatch_raw(short)

    async def _client_disconnect(self, reason: int, properties: Properties) -> None:
        """The client's DISCONNECT: a new Session Expiry Interval (not from 0: MQTT-3.14.2-2);
        only reason 0x00 is a graceful end (the will is discarded); 0x04 and the error codes
        publish it."""
        terms = self.v5
        assert terms is not None
        expiry = properties.get("session_expiry_interval")
        if isinstance(expiry, int):
            if not terms.session_expiry and expiry:
                raise ProtocolViolation("DISCONNECT sets a session expiry after 0 (MQTT-3.14.2-2)", PROTOCOL_ERROR)
            terms.session_expiry = expiry
            self.session.clean_session = expiry == 0
        if reason:  # 0x04 asks for the will, an error code ends as abnormally (MQTT-3.1.2-10)
            await self.handler.handle_disconnect(None)
        else:
            await self.handler.disconnect_received()

    async def _disconnect5(self, code: int) -> None:
        """Tell the client why the server closes (a reason code of 0x80 or more), if it still listens."""
        with contextlib.suppress(ConnectionError, OSError):
            await self.handler.write_bytes(encode_disconnect5(code))

    def tell_closing(self, code: int) -> None:
        """An MQTT 5 client whose connection the server ends is told why (3.14.2.1): taken over
        0x8E, kicked 0x98, server shutting down 0x8B, keep alive timeout 0x8D."""
        if self.v5 is None or self.handler.stopping:
            return
        if self.outbox is not None:
            self.outbox.put(encode_disconnect5(code))
        else:
            self._spawn(self._disconnect5(code))

    # -- writing ---------------------------------------------------------------------------

    def _deliver5(
        self,
        message: RoutedCopy,
        qos: int,
        limits: Mqtt,
        seq: int | None,
        retain: bool,
        subscription_ids: tuple[int, ...],
    ) -> bool:
        """``deliver`` for an MQTT 5 client: an expired message or one larger than the client's
        Maximum Packet Size is dropped (False); no more QoS 1/2 copies unacknowledged than its
        Receive Maximum (the rest wait in the background)."""
        properties = message.properties
        now = time.time() if properties is not None else 0.0  # read only for a message's expiry
        if properties is not None and properties.expired(now):
            return False
        terms, outbox, handler = self.v5, self.outbox, self.handler
        assert terms is not None
        limit = terms.maximum_packet_size  # the packet's size does not depend on its packet id
        if limit and len(message.v5_packet(qos, 1, retain, subscription_ids, now)) > limit:
            return False
        direct = not self.count and outbox is not None and qos < 2 and not handler.stopping and outbox.has_room()
        if direct and qos:  # within the client's Receive Maximum too
            direct = handler.unacknowledged < terms.receive_maximum and self._room_in_flight(len(message.data), limits)
        if not direct or outbox is None:
            return self._queue(message, qos, limits, seq, retain, subscription_ids)
        if qos:
            packet_id = self._in_flight_directly(message, seq, retain, subscription_ids)
            handler.unacknowledged += 1
            outbox.put(message.v5_packet(qos, packet_id, retain, subscription_ids, now))
        else:
            outbox.put(message.v5_packet(0, 0, retain, subscription_ids, now))
        return True
