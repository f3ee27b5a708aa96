"""``Faults``: the faults enabled on one broker, and the queries the MQTT side makes of them.

The MQTT side reads ``active`` (one attribute) on its hot paths and asks no more while no fault
is enabled. Every change runs on the broker's event loop: called from another thread (the
threaded broker, a pytest fixture), a method hands itself to the loop and waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from broker.clock import Clock, LoopClock
from broker.faults.delays import DelayLine
from broker.faults.plans import AckHold, ConnectRefusal, DeliveryKind, DeliveryVerdict
from broker.faults.scope import FaultScope, log

__all__ = ["ConnectionFaults", "Faults"]

T = TypeVar("T")
_CROSS_THREAD_WAIT = 10.0  # seconds a call from another thread waits for the loop
_CONNACK_CODES = range(1, 6)  # the refusals of MQTT 3.1.1 (3.2.2.3)


class ConnectionFaults(Protocol):
    """What the MQTT side does to one live connection (the adapter implements it)."""

    def drop_connection(self, client_id: str) -> bool:
        """Abort the client's connection (no DISCONNECT: its will is published); False if it
        is not connected."""
        ...

    def black_hole(self, client_id: str, on_end: Callable[[], None]) -> Callable[[], None]:
        """Stop reading from and writing to the client's connection without closing it (what is
        written meanwhile is kept); return what resumes both, the kept bytes first. ``on_end``
        is called when the connection ends. LookupError if it is not connected, ValueError for a
        websocket."""
        ...


class Faults:
    """The faults of one broker (see broker/faults/__init__.py); each returns a ``FaultScope``."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.active = False
        """Whether any fault is enabled: the one check the MQTT side makes while none is."""
        self._refusals: list[ConnectRefusal] = []
        self._deliveries: list[DeliveryVerdict] = []
        self._acks: list[AckHold] = []
        self._scopes: list[FaultScope] = []
        self._lines: set[DelayLine] = set()  # each connection's copies held by delay faults
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._connections: ConnectionFaults | None = None
        self._clock = clock or LoopClock()  # the broker's: what ends a fault enabled for a time

    def attach(self, connections: ConnectionFaults, loop: asyncio.AbstractEventLoop) -> None:
        """Called by the broker as it starts: the loop every change runs on, and its connections."""
        self._connections, self._loop, self._loop_thread = connections, loop, threading.get_ident()

    # -- enabling (the public API) ------------------------------------------------------

    def refuse_connects(self, n: int = 1, *, code: int | None = 3) -> FaultScope:
        """Refuse the next ``n`` CONNECTs with CONNACK return ``code`` (1-5; 3: server
        unavailable), or with ``code=None`` by closing the socket without a CONNACK."""
        _check_count(n)
        if code is not None and code not in _CONNACK_CODES:
            raise ValueError(f"code must be a CONNACK refusal (1-5) or None, not {code!r}")
        how = f"CONNACK {code}" if code is not None else "closing the socket"
        return self._on_loop(
            lambda: self._enable(f"refuse the next {n} connect(s) by {how}", self._refusals, ConnectRefusal(n, code))
        )

    def drop_deliveries(
        self, n: int = 1, *, topic_filter: str | None = None, client_id: str | None = None
    ) -> FaultScope:
        """Drop the next ``n`` copies routed to matching clients (counted as dropped, req 2)."""
        _check_count(n)
        return self._delivery("drop", n, topic_filter, client_id)

    def duplicate_deliveries(
        self, n: int = 1, *, topic_filter: str | None = None, client_id: str | None = None
    ) -> FaultScope:
        """Send the next ``n`` QoS 1 copies routed to matching clients twice: the second with
        DUP=1 and the same packet id (a legal redelivery, MQTT 4.3.2)."""
        _check_count(n)
        return self._delivery("duplicate", n, topic_filter, client_id)

    def delay_deliveries(
        self, seconds: float | tuple[float, float], *, topic_filter: str | None = None, client_id: str | None = None
    ) -> FaultScope:
        """Hold every copy routed to matching clients back by ``seconds``, or by a time drawn
        uniformly from ``(low, high)``, until undone (copies still waiting then leave at once)."""
        low, high = seconds if isinstance(seconds, tuple) else (seconds, seconds)
        if not 0 <= low <= high:
            raise ValueError(f"seconds must be >= 0 (a range low <= high), not {seconds!r}")
        return self._delivery("delay", None, topic_filter, client_id, (float(low), float(high)))

    def withhold_acks(self, client_id: str, seconds: float | None = None) -> FaultScope:
        """Hold back the PUBACK and PUBCOMP of ``client_id``'s publishes (a slow broker) until
        undone, or for ``seconds``; then they go, in order."""
        if seconds is not None and seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {seconds!r}")

        def enable() -> FaultScope:
            hold = AckHold(client_id, self._running_loop().create_future())
            scope = self._enable(f"withhold PUBACK/PUBCOMP of {client_id}'s publishes", self._acks, hold, hold.released)
            if seconds is not None:
                self._clock.call_later(seconds, scope.undo)
            return scope

        return self._on_loop(enable)

    def black_hole(self, client_id: str) -> FaultScope:
        """Stop reading from and writing to ``client_id``'s connection without closing it, so
        that keep-alive runs out on either side; undo resumes it if it is still open, and what
        the broker wrote meanwhile arrives then (as TCP delivers it after an outage). The fault
        ends with the connection."""

        def enable() -> FaultScope:
            resume = self._target().black_hole(client_id, lambda: scope.undo())  # its connection ended
            scope = self._enable(f"black-hole the connection of {client_id}", on_clear=resume)
            return scope

        return self._on_loop(enable)

    def drop_connection(self, client_id: str) -> bool:
        """Abort ``client_id``'s connection now (no DISCONNECT: its will is published); False
        if it is not connected. A one-off action, so it returns no scope."""

        def drop() -> bool:
            dropped = self._target().drop_connection(client_id)
            if dropped:
                log.info("fault: dropped the connection of %s", client_id)
            return dropped

        return self._on_loop(drop)

    def clear(self, *, discard_delayed: bool = False) -> None:
        """Undo every fault. ``discard_delayed`` (``reset()`` and ``stop()``): the copies delay
        faults hold are dropped, not counted, instead of leaving (a persistent session's stay
        in the store)."""

        def undo_all() -> None:
            if discard_delayed:
                for line in list(self._lines):
                    line.discard()
            for scope in list(self._scopes):
                scope.undo()

        self._on_loop(undo_all)

    @property
    def active_faults(self) -> list[str]:
        """What each fault in force does."""
        return [scope.description for scope in self._scopes if scope.is_active]

    # -- queries (the MQTT side, only while ``active``) ---------------------------------

    def connect_refusal(self) -> ConnectRefusal | None:
        """The refusal for a CONNECT now (the caller calls its ``take``), or None to accept it."""
        return self._refusals[0] if self._refusals else None

    def delivery(self, client_id: str, topic: str, qos: int) -> DeliveryVerdict | None:
        """The first delivery fault that matches this copy, or None."""
        for verdict in self._deliveries:
            if verdict.matches(client_id, topic, qos):
                return verdict
        return None

    def ack_hold(self, client_id: str) -> asyncio.Future[None] | None:
        """What ``client_id``'s acknowledgements wait for now, or None."""
        for hold in self._acks:
            if hold.client_id == client_id:
                return hold.released
        return None

    # -- inside -------------------------------------------------------------------------

    def _delivery(
        self,
        kind: DeliveryKind,
        n: int | None,
        topic_filter: str | None,
        client_id: str | None,
        delay: tuple[float, float] = (0.0, 0.0),
    ) -> FaultScope:
        if topic_filter is not None and not topic_filter:
            raise ValueError("topic_filter must not be empty")
        targets = [f"topic {topic_filter}"] if topic_filter else []
        targets += [f"client {client_id}"] if client_id else []
        what = {"drop": f"drop the next {n}", "duplicate": f"duplicate the next {n} QoS 1", "delay": "delay"}[kind]
        description = f"{what} deliveries"
        if kind == "delay":
            description += f" by {delay[0]}s" if delay[0] == delay[1] else f" by {delay[0]}-{delay[1]}s"
        description += f" to {' and '.join(targets)}" if targets else ""

        def enable() -> FaultScope:
            released = self._running_loop().create_future() if kind == "delay" else None
            verdict = DeliveryVerdict(kind, topic_filter, client_id, n, delay, released, lines=self._lines)
            return self._enable(description, self._deliveries, verdict, released)

        return self._on_loop(enable)

    def _enable(
        self,
        description: str,
        records: list[Any] | None = None,
        record: ConnectRefusal | DeliveryVerdict | AckHold | None = None,
        released: asyncio.Future[None] | None = None,
        on_clear: Callable[[], None] | None = None,
    ) -> FaultScope:
        """Put ``record`` in force (on the loop) under a new scope, whose undo takes it out,
        settles ``released`` and calls ``on_clear``."""

        def clear() -> None:
            if records is not None and record in records:
                records.remove(record)
            if released is not None and not released.done():
                released.set_result(None)
            if scope in self._scopes:
                self._scopes.remove(scope)
            self._update()
            if on_clear is not None:
                on_clear()

        scope = FaultScope(description, lambda: self._on_loop(clear))
        if record is not None:
            record.scope = scope
        if records is not None:
            records.append(record)
        self._scopes.append(scope)
        self._update()
        return scope

    def _update(self) -> None:
        self.active = bool(self._refusals or self._deliveries or self._acks)

    def _target(self) -> ConnectionFaults:
        if self._connections is None:
            raise RuntimeError("the broker is not running: start it before faulting its connections")
        return self._connections

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        return asyncio.get_running_loop()  # not started yet: called from the loop it will run in

    def _on_loop(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the broker's loop: now if called there (or before the broker
        started), else handed over and waited for."""
        loop = self._loop
        if loop is None or self._loop_thread == threading.get_ident() or loop.is_closed():
            return function()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the calling thread
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(_CROSS_THREAD_WAIT)


def _check_count(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, not {n!r}")
