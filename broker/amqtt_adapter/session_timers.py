"""``SessionTimers``: wills, and the MQTT 5 timers of a session whose connection ended.

A will is published once, after an abnormal end: at once for MQTT 3.1.1, and for MQTT 5 when its
Will Delay Interval ends or its session ends, whichever comes first, and not at all if the client
connects again before then (MQTT 5.0 3.1.2.11.1 and 3.1.3.2.2). An MQTT 5 session whose Session
Expiry Interval is neither 0 (it ended with its connection) nor 0xFFFFFFFF ends that many
seconds after its connection, unless the client connects again first; the store keeps when its
connection ended, so a restart arms it with the time it has left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from amqtt.contexts import Action
from amqtt.session import Session

from broker.amqtt_adapter.session import EdgeSession
from broker.clock import Clock, Timer
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.v5_session import NEVER_EXPIRES
from broker.persistence.journal import Journal

__all__ = ["SessionTimers"]

log = logging.getLogger("edgemq.mqtt")

_Will = tuple[str, bytes, int, bool, MessageProperties | None]


class SessionTimers:
    """The wills and session-expiry half of ``EdgeAmqttBroker`` (a base class of it)."""

    _clock: Clock
    _journal: Journal | None
    _sessions: dict[str, tuple[Session, Any]]  # amqtt's
    _connections: dict[str, Any]

    def _init_timers(self) -> None:
        self._will_timers: dict[str, Timer] = {}
        self._expiry_timers: dict[str, Timer] = {}
        self._timer_tasks: set[asyncio.Task[Any]] = set()

    if TYPE_CHECKING:  # provided by the other halves of the broker

        async def _topic_allowed(self, session: Session, topic: str, action: Action) -> bool: ...

        @property
        def _checks_topics(self) -> bool: ...

        def _announce(self, client_id: str | None, topic: str, payload: bytes, qos: int, retain: bool) -> None: ...

        async def retain_message(
            self,
            source_session: Session | None,
            topic_name: str | None,
            data: bytes | bytearray | None,
            qos: int | None = None,
            *,
            properties: MessageProperties | None = None,
        ) -> None: ...

        async def _route(self, sender: Session | None, topic: str, data: bytes, qos: int, **options: Any) -> None: ...

        async def _delete_session(self, client_id: str) -> None: ...

    # -- wills -----------------------------------------------------------------------------

    def _will_of(self, session: Session) -> _Will | None:
        if not session.will_flag or not session.will_topic or session.will_message is None:
            return None
        v5 = session.v5 if isinstance(session, EdgeSession) else None
        will = v5.will_properties if v5 is not None else None
        return (
            session.will_topic,
            bytes(session.will_message),
            session.will_qos or 0,
            bool(session.will_retain),
            MessageProperties.from_properties(will, time.time()) if will is not None else None,
        )

    async def _will_at_end(self, session: Session) -> None:
        """An abnormal end: the will now, or when its delay or its session ends (MQTT 5)."""
        will = self._will_of(session)
        if will is None:
            return
        v5 = session.v5 if isinstance(session, EdgeSession) else None
        delay = 0 if v5 is None or session.clean_session else min(v5.will_delay, v5.session_expiry)
        if not delay:
            await self._publish_will(session, will)
            return
        client_id = session.client_id
        self._will_timers[client_id] = self._clock.call_later(delay, self._will_due, session)

    def _will_due(self, session: Session) -> None:
        self._will_timers.pop(session.client_id, None)
        will = self._will_of(session)  # made now: its message expiry starts when it is published
        if will is not None:
            self._spawn_timed(self._publish_will(session, will))

    async def _publish_will(self, session: Session, will: _Will) -> None:
        """Route (and retain, if asked) a will; the ACL judges it as the client's PUBLISH."""
        topic, payload, qos, retain, properties = will
        if self._checks_topics and not await self._topic_allowed(session, topic, Action.PUBLISH):
            return
        self._announce(session.client_id, topic, payload, qos, retain)
        if retain:
            await self.retain_message(session, topic, payload, qos, properties=properties)
        await self._route(session, topic, payload, qos, retain=retain, properties=properties)

    # -- session expiry --------------------------------------------------------------------

    def _expire_later(self, session: Session, remaining: float | None = None) -> None:
        """An MQTT 5 session kept after its connection: ended when its expiry interval runs out,
        or in ``remaining`` seconds (a session restored at start-up). One whose connection ends
        now has its expiry and end time written to the store (its time left after a restart)."""
        v5 = session.v5 if isinstance(session, EdgeSession) else None
        if v5 is None or session.clean_session:
            return
        if remaining is None and self._journal is not None:
            self._journal.session_offline(session.client_id, v5.session_expiry, time.time())
        if v5.session_expiry >= NEVER_EXPIRES:
            return
        delay = v5.session_expiry if remaining is None else remaining
        self._expiry_timers[session.client_id] = self._clock.call_later(delay, self._expiry_due, session)

    def _expiry_due(self, session: Session) -> None:
        client_id = session.client_id
        self._expiry_timers.pop(client_id, None)
        if self._sessions.get(client_id, (None,))[0] is not session or client_id in self._connections:
            return

        async def end() -> None:
            if self._sessions.get(client_id, (None,))[0] is session and client_id not in self._connections:
                log.info("session expired: client_id=%s", client_id)
                await self._delete_session(client_id)  # a will still waiting for its delay goes now

        self._spawn_timed(end())

    def _connected_again(self, client_id: str) -> None:
        """The client id connects: its session does not expire while it is connected."""
        timer = self._expiry_timers.pop(client_id, None)
        if timer is not None:
            timer.cancel()

    def _session_resumed(self, client_id: str) -> None:
        """The client connected again in time to continue its session: its delayed will is not
        published (MQTT-3.1.3-9)."""
        timer = self._will_timers.pop(client_id, None)
        if timer is not None:
            timer.cancel()

    async def _session_ends(self, client_id: str) -> None:
        """A session ends for good (expiry, clean start, a clean kick): a will still waiting for
        its delay is published now (3.1.2.5: delay or session end, whichever comes first), and
        nothing is left armed for it."""
        self._connected_again(client_id)
        will = self._will_timers.pop(client_id, None)
        if will is None:
            return
        will.cancel()
        session = self._sessions.get(client_id, (None,))[0]
        pending = self._will_of(session) if session is not None else None
        if session is not None and pending is not None:
            await self._publish_will(session, pending)

    def _cancel_timers(self) -> None:
        """At shutdown: nothing more expires or is published late."""
        for timers in (self._will_timers, self._expiry_timers):
            for timer in timers.values():
                timer.cancel()
            timers.clear()

    def _spawn_timed(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._timer_tasks.add(task)
        task.add_done_callback(self._timer_done)

    def _timer_done(self, task: asyncio.Task[Any]) -> None:
        self._timer_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a will or session expiry failed: %r", task.exception())
