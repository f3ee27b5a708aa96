"""``UpstreamLink``: one MQTT 3.1.1 connection from a bridge to its upstream broker (MQTT 5:
``UpstreamLinkV5`` in broker/bridges/link_v5.py).

The client side of the protocol on edgemq's own framing (broker/mqtt/framing.py) and encoders
(broker/mqtt/encoding.py): CONNECT and CONNACK, SUBSCRIBE, PUBLISH written without waiting (the
bridge keeps a window of them in flight), the acknowledgements both ways, keep-alive (PINGREQ when
nothing was sent for half the keep-alive; the link is given up when nothing came for 1.5 times
it, so a link that goes silent without FIN or RST is noticed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from broker.bridges.upstream_v5 import UpstreamLimits
from broker.mqtt.encoding import (
    DISCONNECT,
    PINGREQ,
    encode_connect,
    encode_puback,
    encode_pubcomp,
    encode_pubrec,
    encode_pubrel,
    encode_subscribe,
    encode_unsubscribe,
)
from broker.mqtt.framing import ProtocolViolation, encode_publish, parse_publish, split_packet
from broker.mqtt.message_properties import MessageProperties

__all__ = ["LinkError", "LinkOptions", "UpstreamLink"]

log = logging.getLogger("edgemq.bridge")

_CONNACK, _PUBLISH, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP, _SUBACK, _UNSUBACK = 2, 3, 4, 5, 6, 7, 9, 11
_MAX_PACKET = 268_435_455
_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
OnPublish = Callable[[str, bytes, int, bool, MessageProperties | None], Awaitable[None]]
"""A message from the upstream (topic, payload, qos, retain, MQTT 5 properties); acknowledged once
it returns."""
OnAcknowledged = Callable[[int, bool, int], None]
"""An acknowledgement from the upstream: (packet id, final, reason code): PUBACK, PUBCOMP or a PUBREC
refusing the message (True), a PUBREC taking it (False); a reason code of 0x80 or more: refused."""


class LinkError(Exception):
    """The link could not be made (the message says why: refused, TLS, CONNACK code, timeout)."""


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """Where and how to connect."""

    host: str
    port: int
    client_id: str
    username: str | None
    password: str | None
    keepalive: int
    clean_session: bool
    tls: ssl.SSLContext | None
    server_name: str | None = None
    """The name the server's certificate is checked against (and SNI); None: ``host``."""
    connect_timeout: float = 10.0
    proto_ver: int = 4
    """4: MQTT 3.1.1 (``UpstreamLink``); 5: MQTT 5 (``UpstreamLinkV5``)."""


class UpstreamLink:
    """A connected link; ``run`` reads until it ends (then ``closed`` is set)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keepalive: int,
        on_publish: OnPublish,
        on_acknowledged: OnAcknowledged,
        incoming_qos2: set[int],
    ) -> None:
        self._reader, self._writer = reader, writer
        self._keepalive = keepalive
        self.limits = UpstreamLimits()
        """What the upstream allows (MQTT 5's CONNACK; MQTT 3.1.1: no limits)."""
        self._on_publish, self._on_acknowledged = on_publish, on_acknowledged
        self._buffer = bytearray()
        self._read_at = 0  # where the next packet starts in _buffer
        self._pending = bytearray()  # written together at the end of the loop turn
        self._replies: dict[int, asyncio.Future[bytes]] = {}  # SUBACK/UNSUBACK awaited, by packet id
        self._incoming_qos2 = incoming_qos2  # ids received, PUBREL not yet (4.3.3 method B): the
        # bridge's, so that they outlive this connection while the upstream keeps our session
        self._last_sent = self._last_read = time.monotonic()
        self.closed = asyncio.Event()
        self.reason = ""
        """Why the link ended (for the log)."""

    @classmethod
    async def connect(
        cls, options: LinkOptions, on_publish: OnPublish, on_acknowledged: OnAcknowledged, incoming_qos2: set[int]
    ) -> tuple[UpstreamLink, bool]:
        """Connect, send CONNECT, read CONNACK: the link and the session-present flag (LinkError if refused)."""
        try:
            async with asyncio.timeout(options.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    options.host,
                    options.port,
                    ssl=options.tls,
                    server_hostname=(options.server_name or options.host) if options.tls else None,
                )
        except TimeoutError:
            raise LinkError(f"no connection within {options.connect_timeout:g}s") from None
        except ssl.SSLError as exc:
            raise LinkError(f"TLS handshake failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise LinkError(exc.strerror or str(exc)) from None
        link = cls(reader, writer, options.keepalive, on_publish, on_acknowledged, incoming_qos2)
        try:
            session_present = await link._handshake(options)
        except OSError as exc:
            link.abort()
            raise LinkError(exc.strerror or str(exc)) from None
        except BaseException:
            link.abort()
            raise
        return link, session_present

    async def _handshake(self, options: LinkOptions) -> bool:
        self._write(self._connect_packet(options))
        try:
            async with asyncio.timeout(options.connect_timeout):
                packet = await self._next_packet()
        except TimeoutError:
            raise LinkError(f"no CONNACK within {options.connect_timeout:g}s") from None
        if packet is None or packet[0] >> 4 != _CONNACK:
            raise LinkError("the upstream closed the connection before its CONNACK")
        return self._connack(packet)

    def _connect_packet(self, options: LinkOptions) -> bytes:
        return encode_connect(
            options.client_id,
            clean_session=options.clean_session,
            keep_alive=options.keepalive,
            username=options.username,
            password=options.password,
        )

    def _connack(self, packet: bytes) -> bool:
        """The session-present flag of the CONNACK (LinkError if it refuses)."""
        if len(packet) != 4:
            raise LinkError("malformed CONNACK from the upstream")
        code = packet[3]
        if code:
            raise LinkError(f"CONNACK {code}: {_CONNACK_REASONS.get(code, 'refused')}")
        return bool(packet[2] & 1)

    # -- writing ---------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Send ``data`` at the end of this loop turn, with what else the turn writes (one system
        call for a window of PUBLISH packets, not one each)."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending += data
        if len(self._pending) >= 1 << 16:
            self._flush()

    def _flush(self) -> None:
        if self._pending and not self._writer.transport.is_closing():
            self._writer.write(self._pending)
            self._last_sent = time.monotonic()
        self._pending = bytearray()

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        packet_id: int,
        *,
        dup: bool,
        properties: MessageProperties | None = None,
    ) -> bool:
        """Write a PUBLISH (no waiting: the bridge counts what is in flight); False, and nothing
        written, if it is larger than the upstream allows."""
        packet = self._publish_packet(topic, payload, qos, retain, packet_id, properties)
        if packet is None:
            return False
        self._write(bytes((packet[0] | 0x08,)) + packet[1:] if dup and qos else packet)
        return True

    def _publish_packet(
        self, topic: str, payload: bytes, qos: int, retain: bool, packet_id: int, properties: MessageProperties | None
    ) -> bytes | None:
        """The PUBLISH to write (None: too large); MQTT 3.1.1 carries no properties."""
        return encode_publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain)

    def pubrel(self, packet_id: int) -> None:
        """Write the PUBREL of a QoS 2 publish (again, after a reconnect, if its PUBREC came)."""
        self._write(encode_pubrel(packet_id))

    @property
    def backlogged(self) -> bool:
        """Whether the socket holds much unsent: the bridge waits for ``drain`` before writing more."""
        return self._writer.transport.get_write_buffer_size() > 1 << 20

    async def drain(self) -> None:
        await self._writer.drain()

    async def subscribe(self, packet_id: int, filters: list[tuple[str, int]], timeout: float) -> list[int]:
        """SUBSCRIBE and wait for the SUBACK's return codes (LinkError without one)."""
        reply = await self._request(packet_id, encode_subscribe(packet_id, *filters), "SUBACK", timeout)
        return list(reply[4:])

    async def unsubscribe(self, packet_id: int, filters: list[str], timeout: float) -> None:
        """UNSUBSCRIBE and wait for the UNSUBACK (LinkError without one)."""
        await self._request(packet_id, encode_unsubscribe(packet_id, *filters), "UNSUBACK", timeout)

    async def _request(self, packet_id: int, packet: bytes, reply: str, timeout: float) -> bytes:
        if self.closed.is_set():
            raise LinkError("the link is closed")
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._replies[packet_id] = waiter
        self._write(packet)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise LinkError(f"no {reply} within {timeout:g}s") from None
        finally:
            self._replies.pop(packet_id, None)

    def close(self) -> None:
        """Send DISCONNECT and close (a clean end: the upstream does not publish a will)."""
        self._write(DISCONNECT)
        self._flush()
        with contextlib.suppress(RuntimeError):
            self._writer.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._writer.transport.abort()

    # -- reading ---------------------------------------------------------------------------

    async def _next_packet(self) -> bytes | None:
        """The next whole packet, None at end of stream (LinkError on a malformed one)."""
        while True:
            try:
                found = split_packet(self._buffer, self._read_at, _MAX_PACKET, first_packet=False)
            except ProtocolViolation as exc:
                raise LinkError(f"malformed packet from the upstream: {exc}") from None
            if found is not None:
                packet, self._read_at = found
                self._last_read = time.monotonic()
                return packet
            del self._buffer[: self._read_at]  # what was read, once per read, not once per packet
            self._read_at = 0
            data = await self._reader.read(65536)
            if not data:
                return None
            self._buffer += data

    async def run(self) -> None:
        """Read and handle packets until the link ends; keep-alive runs beside it."""
        watchdog = asyncio.create_task(self._watch_keepalive(), name="edgemq-bridge-keepalive")
        try:
            while True:
                packet = await self._next_packet()
                if packet is None:
                    self.reason = self.reason or "closed by the upstream"
                    return
                if not await self._handle(packet):
                    return
        except (LinkError, OSError) as exc:
            self.reason = self.reason or str(exc) or type(exc).__name__
        except Exception as exc:  # a message could not be published locally (e.g. the store fails):
            # the link ends unacknowledged, so the upstream sends it again
            self.reason = self.reason or f"a message from the upstream could not be taken: {exc}"
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self.abort()
            self.closed.set()
            for waiter in self._replies.values():  # a request on a link that ended fails now
                if not waiter.done():
                    waiter.set_exception(LinkError(f"the link ended: {self.reason}"))

    async def _handle(self, packet: bytes) -> bool:
        """Handle one packet from the upstream; False: it ended the link."""
        kind = packet[0] >> 4
        if kind in (_PUBACK, _PUBCOMP):
            self._on_acknowledged(struct.unpack_from("!H", packet, 2)[0], True, 0)
        elif kind == _PUBREC:
            packet_id = struct.unpack_from("!H", packet, 2)[0]
            self._on_acknowledged(packet_id, False, 0)
            self.pubrel(packet_id)
        elif kind == _PUBLISH:
            await self._received(packet)
        elif kind == _PUBREL:
            packet_id = struct.unpack_from("!H", packet, 2)[0]
            self._incoming_qos2.discard(packet_id)
            self._write(encode_pubcomp(packet_id))
        elif kind in (_SUBACK, _UNSUBACK):
            waiter = self._replies.get(struct.unpack_from("!H", packet, 2)[0])
            if waiter is not None and not waiter.done():
                waiter.set_result(packet)
        return True

    async def _received(self, packet: bytes) -> None:
        topic, payload, qos, retain, packet_id = parse_publish(packet)
        await self._take(topic, payload, qos, retain, packet_id, None)

    async def _take(
        self, topic: str, payload: bytes, qos: int, retain: bool, packet_id: int, properties: MessageProperties | None
    ) -> None:
        """Hand a message from the upstream to the bridge, then acknowledge it."""
        if qos == 2 and packet_id in self._incoming_qos2:  # a resend: delivered already
            self._write(encode_pubrec(packet_id))
            return
        await self._on_publish(topic, payload, qos, retain, properties)
        if qos == 1:
            self._write(encode_puback(packet_id))
        elif qos == 2:
            self._incoming_qos2.add(packet_id)
            self._write(encode_pubrec(packet_id))

    async def _watch_keepalive(self) -> None:
        if not self._keepalive:
            return
        period = self._keepalive / 2
        while True:
            await asyncio.sleep(self._keepalive / 20)  # a silent link is noticed within 1.55 x keep-alive
            now = time.monotonic()
            if now - self._last_read > 1.5 * self._keepalive:
                self.reason = f"nothing from the upstream for {1.5 * self._keepalive:g}s (keep-alive)"
                self.abort()
                return
            if now - self._last_sent >= period:
                self._write(PINGREQ)
