"""``Bridge``: one upstream broker, its forwarding queue and its link.

Messages to forward are queued in publish order (QoS 1/2 ones also in the store when persistence
is on, written with the PUBLISH that made them, so the local publisher is acknowledged only once
they are durable); a message leaves the queue only at the upstream's PUBACK or PUBCOMP. While the
link is up a window of ``max_inflight`` messages is in flight; when it drops, what was in flight
goes back to the front and the whole queue is sent again at once on reconnect (DUP=1 where it
was sent before, with its packet id), then live traffic follows in order. The link is made again
with exponential backoff and jitter. Messages from the upstream's subscriptions are published
locally (and acknowledged upstream once that is durable).

An MQTT 5 bridge (broker/bridges/link_v5.py) forwards each message's properties and honours what
the upstream's CONNACK allows: no more in flight than its Receive Maximum, QoS at most its Maximum
QoS, no retain flag if it has no retained messages; a message larger than its Maximum Packet Size,
past its expiry, or refused by the upstream (a reason code of 0x80 or more) is dropped and counted
(the first refusal with each reason code is logged as a WARNING), not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from broker.bridges.link import LinkError, LinkOptions, UpstreamLink
from broker.bridges.link_v5 import UpstreamLinkV5
from broker.bridges.upstream_v5 import reason_name
from broker.mqtt.message_properties import MessageProperties
from broker.persistence.journal import Journal, StoredForward

__all__ = ["Bridge", "BridgeStats", "PublishLocal", "Subscription"]

log = logging.getLogger("edgemq.bridge")

_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 15.0  # seconds between connection attempts, doubling
_STABLE = 10.0  # seconds a link must last for the backoff to start again from its minimum
_SUBACK_TIMEOUT = 10.0
Subscription = tuple[str, int]


class PublishLocal(Protocol):
    """Publish a message from the upstream locally (with its MQTT 5 properties, if any); returns
    once durable."""

    def __call__(
        self, topic: str, payload: bytes, qos: int, retain: bool, /, *, properties: MessageProperties | None = None
    ) -> Awaitable[None]: ...


@dataclass(slots=True)
class _Queued:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    queued_at: float
    packet_id: int = 0
    sent: bool = False
    released: bool = False  # QoS 2: PUBREC came, PUBREL is what is resent
    written: asyncio.Future[None] | None = None  # the commit holding its row: it is sent only after
    properties: MessageProperties | None = None  # MQTT 5 bridges only


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """What the admin API shows of a bridge."""

    name: str
    server: str
    state: str
    """connected, connecting, disconnected (waiting to try again) or paused."""
    queued: int
    in_flight: int
    oldest_queued_seconds: float
    forwarded: int
    received: int
    dropped: int
    last_error: str | None
    resent: int = 0
    """Messages sent again after a reconnect (DUP=1): the upstream may hold them twice (QoS 1)."""


class Bridge:
    """See the module docstring; ``run`` keeps the link until cancelled."""

    def __init__(
        self,
        name: str,
        server: str,
        options: LinkOptions,
        *,
        subscriptions: list[Subscription],
        receive: PublishLocal,
        journal: Journal | None,
        max_queued: int,
        max_inflight: int,
        restored: list[StoredForward] | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name, self.server, self._options = name, server, options
        self._subscriptions, self._receive, self._journal = subscriptions, receive, journal
        self._max_queued, self._max_inflight = max_queued, max_inflight
        now = time.monotonic()
        self._queue: dict[int, _Queued] = {
            m.seq: _Queued(m.seq, m.topic, m.payload, m.qos, m.retain, now, properties=m.properties)
            for m in restored or ()
        }
        self._on_change = on_change  # the link came up or went down, or a message was acknowledged
        self._unsent: deque[int] = deque(self._queue)
        self._in_flight: dict[int, int] = {}  # packet id -> seq
        self._next_id = 0
        self._own_seq = max(self._queue, default=0)  # without a journal, the bridge numbers its messages
        self._link: UpstreamLink | None = None
        self._wakeup = asyncio.Event()
        self._paused = False
        self._connecting = False
        self._incoming_qos2: set[int] = set()  # the upstream's QoS 2 ids awaiting PUBREL, across links
        self.forwarded = self.received = self.dropped = self.resent = 0
        self._last_error: str | None = None
        self._refusals_logged: set[int] = set()  # reason codes of the upstream's refusals, logged once each

    # -- queueing (called by the router, at the moment a message is routed) -----------------

    def enqueue(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: MessageProperties | None = None
    ) -> None:
        """Queue a message for the upstream (dropped and counted when the queue is full);
        ``properties`` are sent on an MQTT 5 link."""
        if len(self._queue) >= self._max_queued:
            self.dropped += 1
            return
        journal = self._journal
        written = None
        if journal is not None:
            seq = journal.next_seq()
            if qos:
                written = journal.forward_queued(self.name, seq, topic, payload, qos, retain, properties=properties)
        else:
            self._own_seq += 1
            seq = self._own_seq
        queued = _Queued(seq, topic, payload, qos, retain, time.monotonic(), written=written, properties=properties)
        self._queue[seq] = queued
        self._unsent.append(seq)
        if self._link is not None:
            self._wakeup.set()

    # -- the link ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, keep the link, reconnect with backoff; until cancelled."""
        delay = _BACKOFF_MIN
        while True:
            self._connecting = True
            try:
                kind = UpstreamLinkV5 if self._options.proto_ver == 5 else UpstreamLink
                link, session_present = await kind.connect(
                    self._options, self._received, self._acknowledged, self._incoming_qos2
                )
            except LinkError as exc:
                self._connecting = False
                if self._last_error is None:
                    log.warning("bridge %s: cannot connect to %s: %s (retrying)", self.name, self.server, exc)
                else:
                    log.debug("bridge %s: cannot connect to %s: %s", self.name, self.server, exc)
                self._last_error = str(exc)
                self._on_change()  # connecting -> disconnected, with the reason
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            self._connecting = False
            if not session_present:
                self._new_session()
            started = time.monotonic()
            await self._serve(link)
            # a link that lasted resets the backoff; one dropped at once (a client id taken over, an
            # upstream refusing a subscription) is retried with growing delays
            delay = _BACKOFF_MIN if time.monotonic() - started >= _STABLE else min(delay * 2, _BACKOFF_MAX)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311

    def _new_session(self) -> None:
        """The upstream holds no session of ours: it knows none of our packet ids, so what it
        acknowledged with PUBREC is sent again whole (a PUBREL alone would be answered and lost)."""
        self._incoming_qos2.clear()
        for queued in self._queue.values():
            queued.released = queued.sent = False

    async def _serve(self, link: UpstreamLink) -> None:
        reading = asyncio.create_task(link.run(), name=f"edgemq-bridge-{self.name}-reader")
        pumping: asyncio.Task[None] | None = None
        try:
            if self._subscriptions:
                codes = await link.subscribe(self._packet_id(), self._subscriptions, _SUBACK_TIMEOUT)
                for (topic_filter, _), code in zip(self._subscriptions, codes, strict=False):
                    if code >= 0x80:
                        log.warning("bridge %s: the upstream refused the subscription %s", self.name, topic_filter)
            self._link, self._last_error = link, None
            self._on_change()
            log.info("bridge %s: connected to %s (%d queued)", self.name, self.server, len(self._queue))
            pumping = asyncio.create_task(self._pump(link), name=f"edgemq-bridge-{self.name}-sender")
            self._wakeup.set()
            await link.closed.wait()
        except LinkError as exc:
            link.reason = link.reason or str(exc)
        finally:
            if self._link is not None:
                self._link = None
                self._on_change()
            tasks = [task for task in (pumping, reading) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            link.abort()
            self._requeue_in_flight()
        self._last_error = link.reason or "link lost"
        log.warning("bridge %s: link to %s lost: %s (%d queued)", self.name, self.server, link.reason, len(self._queue))

    def _requeue_in_flight(self) -> None:
        """What was in flight goes back to the front, in order, to be sent again."""
        if self._in_flight:
            self._unsent.extendleft(sorted(self._in_flight.values(), reverse=True))
            self._in_flight.clear()

    async def _pump(self, link: UpstreamLink) -> None:
        """Send queued messages in order, at most ``max_inflight`` (and the upstream's Receive
        Maximum) unacknowledged at a time."""
        window = min(self._max_inflight, link.limits.receive_maximum)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._unsent and len(self._in_flight) < window and not self._paused:
                seq = self._unsent[0]
                queued = self._queue.get(seq)
                if queued is not None and queued.written is not None and not queued.written.done():
                    # its row first: an acknowledgement's delete must not be committed before it
                    await asyncio.wait([queued.written])
                    queued.written = None
                    continue  # the link or the queue may have changed meanwhile
                self._unsent.popleft()
                if queued is None:
                    continue
                self._send(link, queued)
                if link.backlogged:
                    await link.drain()

    def _send(self, link: UpstreamLink, queued: _Queued) -> None:
        limits, properties = link.limits, queued.properties
        if properties is not None and properties.expired(time.time()):
            self._drop(queued, "its message expiry interval passed")
            return
        qos, retain = min(queued.qos, limits.maximum_qos), queued.retain and limits.retain_available
        if not qos:
            if link.publish(queued.topic, queued.payload, 0, retain, 0, dup=False, properties=properties):
                self._done(queued)
                self.forwarded += 1
            else:
                self._drop(queued, "larger than the upstream's maximum packet size")
            return
        if not queued.packet_id:
            queued.packet_id = self._packet_id()
        if queued.released:
            link.pubrel(queued.packet_id)
        elif not link.publish(
            queued.topic, queued.payload, qos, retain, queued.packet_id, dup=queued.sent, properties=properties
        ):
            self._drop(queued, "larger than the upstream's maximum packet size")
            return
        self._in_flight[queued.packet_id] = queued.seq
        self.resent += queued.sent
        queued.sent = True

    def _done(self, queued: _Queued) -> None:
        """The message leaves the queue (and the store: a QoS 1/2 one has a row there)."""
        del self._queue[queued.seq]
        if queued.qos and self._journal is not None:
            self._journal.forward_acknowledged(self.name, queued.seq)

    def _drop(self, queued: _Queued, why: str) -> None:
        """Drop and count a message the upstream must not or will not take."""
        log.debug("bridge %s: message on %s dropped: %s", self.name, queued.topic, why)
        self._done(queued)
        self.dropped += 1
        self._on_change()

    def _reserved_id(self) -> int:
        """A packet id no PUBLISH in flight holds (the next ones given to PUBLISH skip past it)."""
        return self._packet_id()

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._in_flight:
                return self._next_id
        raise RuntimeError("no free packet id")  # cannot happen: max_inflight is at most 65535

    def _acknowledged(self, packet_id: int, final: bool, reason: int = 0) -> None:
        """PUBACK/PUBCOMP (``final``): the message is done; PUBREC: its PUBREL is what is resent.
        A ``reason`` of 0x80 or more (MQTT 5): the upstream refused it, it is dropped."""
        seq = self._in_flight.get(packet_id)
        if seq is None:
            return
        if not final:
            queued = self._queue.get(seq)
            if queued is not None:
                queued.released = True
            return
        del self._in_flight[packet_id]
        if (queued := self._queue.get(seq)) is not None:
            if reason >= 0x80:
                self._refused(queued, reason)
            else:
                self._done(queued)
                self.forwarded += 1
                self._on_change()  # the figures changed (cheap while nobody listens)
        self._wakeup.set()

    def _refused(self, queued: _Queued, reason: int) -> None:
        if reason not in self._refusals_logged:
            self._refusals_logged.add(reason)
            log.warning(
                "bridge %s: the upstream refused a message on %s: %s (dropped, not sent again; later"
                " refusals with this reason are counted in dropped)",
                self.name,
                queued.topic,
                reason_name(reason),
            )
        self._drop(queued, f"refused by the upstream: {reason_name(reason)}")

    async def _received(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: MessageProperties | None
    ) -> None:
        await self._receive(topic, payload, qos, retain, properties=properties)
        self.received += 1

    # -- control and figures ---------------------------------------------------------------

    async def subscribe_remote(self, filters: list[Subscription]) -> None:
        """Subscribe upstream now (if the link is up) and at every reconnect."""
        self._subscriptions = [s for s in self._subscriptions if s[0] not in {f for f, _ in filters}] + filters
        if self._link is not None:
            await self._link.subscribe(self._reserved_id(), filters, _SUBACK_TIMEOUT)

    async def unsubscribe_remote(self, filters: list[str]) -> None:
        """Unsubscribe upstream now (if the link is up) and not again at reconnects."""
        self._subscriptions = [s for s in self._subscriptions if s[0] not in filters]
        if self._link is not None:
            await self._link.unsubscribe(self._reserved_id(), filters, _SUBACK_TIMEOUT)

    def take_over(self, old: Bridge) -> None:
        """Continue ``old`` (stopped): its queue in order, its pause and its figures."""
        old._requeue_in_flight()
        for seq in sorted(old._queue):
            self._queue[seq] = old._queue[seq]
            self._unsent.append(seq)
        old._queue.clear()
        old._unsent.clear()
        self._own_seq = max(self._own_seq, old._own_seq)
        self._paused = old._paused
        self._incoming_qos2, self._next_id = old._incoming_qos2, old._next_id  # the upstream's session goes on
        self.forwarded, self.received, self.dropped, self.resent = old.forwarded, old.received, old.dropped, old.resent
        self._refusals_logged = old._refusals_logged

    def pause(self, paused: bool) -> None:
        """Stop (or resume) sending; the queue keeps filling."""
        self._paused = paused
        self._wakeup.set()

    async def close(self) -> None:
        """End the link cleanly (DISCONNECT) if it is up."""
        if self._link is not None:
            self._link.close()

    def stats(self) -> BridgeStats:
        oldest = next(iter(self._queue.values()), None)
        if self._paused:
            state = "paused"
        elif self._link is not None:
            state = "connected"
        else:
            state = "connecting" if self._connecting else "disconnected"
        return BridgeStats(
            self.name,
            self.server,
            state,
            len(self._queue),
            len(self._in_flight),
            time.monotonic() - oldest.queued_at if oldest is not None else 0.0,
            self.forwarded,
            self.received,
            self.dropped,
            self._last_error,
            self.resent,
        )
