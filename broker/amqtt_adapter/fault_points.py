"""Where the MQTT side applies the faults of broker/faults: changed deliveries (router.py), and
dropped or black-holed connections (``ConnectionFaultTargets``); refused CONNECTs are in
handler.py, withheld acknowledgements in held_acks.py. A delivery fault is looked up only once
``Faults.active`` was found set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from broker.amqtt_adapter.connection import Connection
from broker.amqtt_adapter.outbox import RoutedCopy
from broker.amqtt_adapter.outgoing import OutgoingCopy
from broker.config.settings import Mqtt
from broker.faults import DelayLine, DeliveryVerdict, HeldCopy

__all__ = ["ConnectionFaultTargets", "deliver_faulted"]

log = logging.getLogger("edgemq.faults")


def deliver_faulted(
    connection: Connection, verdict: DeliveryVerdict, message: RoutedCopy, qos: int, limits: Mqtt, seq: int | None
) -> bool:
    """Deliver one copy as the fault says; False if it is dropped (the caller counts it)."""
    if verdict.kind == "drop":
        verdict.applied()
        log.debug("fault: dropped a copy of %s for %s", message.topic, connection.client_id)
        return False
    if verdict.kind == "delay":
        verdict.applied()
        assert verdict.released is not None
        if seq is not None and connection.journal is not None:  # a persistent session's copy: its row
            connection.journal.queued(
                connection.client_id, seq, message.topic, message.data, qos, properties=message.properties
            )
        line = connection.delay_line
        if line is None:
            line = connection.delay_line = DelayLine(partial(_keep, connection), verdict.lines)
        held = line.hold((message.topic, message.data, qos, seq), verdict.delay(), verdict.released)
        connection.send_in_background(message.topic, message.data, qos, seq=seq, held=held)
        return True
    if connection.deliver_twice(message, limits, seq):
        verdict.applied()
        return True
    return connection.deliver(message, qos, limits, seq)  # not written at once: the next one is doubled


def _keep(connection: Connection, copy: HeldCopy) -> bool:
    """A copy still held when its connection ended: a persistent session's QoS 1/2 copy goes in
    flight, so that the next connection sends it first, in the order it was routed (before what
    was queued meanwhile); any other is lost (False: the connection counts it as dropped)."""
    session = connection.session
    if not copy.qos or session.clean_session:
        return False
    packet_id = session.next_packet_id
    session.inflight_out[packet_id] = OutgoingCopy(packet_id, copy.topic, copy.qos, copy.data, False, copy.seq)
    return True


def _drop(connection: Connection) -> None:
    """Abort the connection as a network failure would: no DISCONNECT, so the will is published."""
    connection.end_reason = "dropped by a fault"
    transport = connection.reader.source.transport
    if transport is not None:
        transport.abort()
    else:  # a websocket: its source aborts the connection
        connection.reader.interrupt()


class _Hole:
    """A transport that keeps what is written and sends nothing, and does not resume reading,
    until the fault is undone (``release``): as TCP keeps unacknowledged bytes through a network
    outage, so a QoS 1 copy written meanwhile is not lost. The rest (closing, addresses) is the
    real transport's; the bytes kept count as buffered, so the outbox sees a client that does
    not keep up."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._kept = bytearray()

    def write(self, data: Any) -> None:
        """Kept for ``release``."""
        self._kept += data

    def writelines(self, data: Any) -> None:
        """Kept for ``release`` (not forwarded: that would write past the hole)."""
        for chunk in data:
            self._kept += chunk

    def get_write_buffer_size(self) -> int:
        return len(self._kept) + int(self._transport.get_write_buffer_size())

    def resume_reading(self) -> None:
        """Stays paused until the fault is undone (StreamConnection resumes after a full buffer)."""

    def release(self) -> None:
        """Write what was kept to the real transport (if it is still open)."""
        kept, self._kept = self._kept, bytearray()
        if kept and not self._transport.is_closing():
            self._transport.write(kept)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _black_hole(connection: Connection, on_end: Callable[[], None]) -> Callable[[], None]:
    """Stop reading the connection and keep back what is written to it, without closing it;
    the broker's keep-alive check then runs as for a silent client. Return what resumes both
    (what was kept is written first)."""
    source, outbox = connection.reader.source, connection.outbox
    real = source.transport
    if real is None or outbox is None:
        raise ValueError(f"client {connection.client_id} is on a websocket: only TCP and TLS can be black-holed")
    hole = _Hole(real)
    void = cast(asyncio.WriteTransport, hole)
    real.pause_reading()  # type: ignore[attr-defined]
    source.transport = void
    outbox.reroute(void)
    ending = asyncio.ensure_future(connection.wait_closed())  # ends with the connection (or its broker)
    ending.add_done_callback(lambda done: None if done.cancelled() else on_end())

    def resume() -> None:
        ending.cancel()
        if source.transport is void:
            outbox.reroute(real)  # what the outbox holds goes into the hole first, in order
            source.transport = real
            hole.release()
            if not real.is_closing():
                real.resume_reading()  # type: ignore[attr-defined]

    return resume


class ConnectionFaultTargets:
    """broker/faults' ConnectionFaults on the broker's live connections (a base class of
    ``EdgeAmqttBroker``)."""

    _connections: dict[str, Connection]

    def _live(self, client_id: str) -> Connection | None:
        connection = self._connections.get(client_id)
        return connection if connection is not None and not connection.ended else None

    def drop_connection(self, client_id: str) -> bool:
        """Abort a client's connection as a network failure would; False if it is not connected."""
        connection = self._live(client_id)
        if connection is not None:
            _drop(connection)
        return connection is not None

    def black_hole(self, client_id: str, on_end: Callable[[], None]) -> Callable[[], None]:
        """Stop reading and writing a client's connection without closing it; what resumes it."""
        connection = self._live(client_id)
        if connection is None:
            raise LookupError(f"client {client_id!r} is not connected")
        return _black_hole(connection, on_end)
