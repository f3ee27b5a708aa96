"""``BridgeSet``: the configured bridges, offered every routed message.

The router calls ``offer`` for each message it routes: every bridge (but the one the message
came from: no loops) whose ``forwards`` match queues it with its mapped topic, QoS (never above
the message's) and retain flag, in the same event-loop turn, so its row in the store is
committed with the PUBLISH. Messages from an upstream subscription are published locally
through ``publish_from`` with the bridge as their origin. A message's MQTT 5 properties travel
with it both ways on an MQTT 5 bridge (``proto_ver = 5``) and are dropped on an MQTT 3.1.1 one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from broker.bridges.bridge import Bridge, BridgeStats, PublishLocal
from broker.bridges.link import LinkOptions
from broker.config.bridge_settings import Bridge as BridgeSettings
from broker.config.bridge_settings import BridgeSsl, Forward, Subscription
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.topics import is_system_topic, topic_matches
from broker.persistence.journal import Journal, StoredForward

__all__ = ["BridgeSet", "PublishFrom"]

log = logging.getLogger("edgemq.bridge")


class PublishFrom(Protocol):
    """Publish locally as coming from a bridge: (topic, payload, qos, retain, bridge name), with
    the message's MQTT 5 properties (None: none); returns once durable."""

    def __call__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        bridge: str,
        /,
        *,
        properties: MessageProperties | None = None,
    ) -> Awaitable[None]: ...


def tls_context(settings: BridgeSsl | None) -> ssl.SSLContext:
    """The client TLS context of a ``tls+mqtt-tcp://`` bridge (the server is verified unless
    ``verify_peer = false``)."""
    settings = settings or BridgeSsl()
    context = ssl.create_default_context(cafile=settings.cacertfile)
    if not settings.verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.certfile:
        context.load_cert_chain(settings.certfile, settings.keyfile, password=settings.keypass)
    return context


class BridgeSet:
    """Every enabled bridge of the configuration."""

    def __init__(
        self,
        configured: dict[str, BridgeSettings],
        publish_from: PublishFrom,
        journal: Journal | None,
        restored: dict[str, list[StoredForward]],
        on_change: Callable[[], None] = lambda: None,
        stored_cap: int = 102400,
    ) -> None:
        self._settings = {name: b for name, b in configured.items() if b.enable}
        self._publish_from, self._journal, self._on_change = publish_from, journal, on_change
        self._stored_cap = stored_cap  # bridges.mqtt.cache.disk_cache_size: messages stored per bridge
        self._rules = {name: list(b.subscription) for name, b in self._settings.items()}  # changed at run time
        self._bridges = {
            name: self._make(name, b, restored.get(name, []), self._rules[name]) for name, b in self._settings.items()
        }
        self._replacing = asyncio.Lock()
        self._stopped = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        for name in restored.keys() - self._bridges.keys():
            log.warning("the store holds %d messages for bridge %s, which is not configured", len(restored[name]), name)

    def _make(
        self, name: str, settings: BridgeSettings, restored: list[StoredForward], rules: list[Subscription]
    ) -> Bridge:
        host, port = settings.address
        options = LinkOptions(
            host,
            port,
            settings.clientid,
            settings.username,
            settings.password,
            math.ceil(settings.keepalive),  # 0.5 s is 1 s, not 0 (no keep-alive)
            settings.clean_start,
            tls_context(settings.ssl) if settings.tls else None,
            settings.ssl.server_name_indication if settings.ssl is not None else None,
            proto_ver=settings.proto_ver,
        )
        return Bridge(
            name,
            settings.server,
            options,
            subscriptions=[(s.remote_topic, s.qos) for s in rules],
            receive=self._receiver(name),
            journal=self._journal,
            max_queued=min(settings.max_send_queue_len, self._stored_cap)
            if self._journal
            else settings.max_send_queue_len,
            max_inflight=settings.max_inflight,
            restored=restored,
            on_change=self._on_change,
        )

    def __bool__(self) -> bool:
        return bool(self._bridges)

    def offer(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        origin: str | None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Queue a routed message on every bridge whose forwards match (not on ``origin``), with
        its MQTT 5 ``properties`` on the MQTT 5 bridges."""
        for name, bridge in self._bridges.items():
            if name == origin:
                continue
            try:
                carried = _carry(self._settings[name].forwards, topic, qos, retain)
            except ValueError as exc:  # the mapping makes no valid topic of this one
                log.debug("bridge %s: not forwarded: %s", name, exc)
                bridge.dropped += 1
                continue
            if carried is not None:
                remote, remote_qos, remote_retain = carried
                carried_properties = properties if self._settings[name].proto_ver == 5 else None
                bridge.enqueue(remote, payload, remote_qos, remote_retain, carried_properties)

    def _receiver(self, name: str) -> PublishLocal:
        async def receive(
            topic: str, payload: bytes, qos: int, retain: bool, *, properties: MessageProperties | None = None
        ) -> None:
            try:
                carried = _carry(self._rules[name], topic, qos, retain)
            except ValueError as exc:
                log.debug("bridge %s: not published locally: %s", name, exc)
                return
            if carried is None:
                return
            local, local_qos, local_retain = carried
            if is_system_topic(local):  # $SYS is the broker's own
                log.debug("bridge %s: not published locally: %s is a $SYS topic", name, local)
                return
            await self._publish_from(local, payload, local_qos, local_retain, name, properties=properties)

        return receive

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every bridge's link (each reconnects on its own until ``stop``)."""
        for name, bridge in self._bridges.items():
            self._tasks[name] = asyncio.create_task(bridge.run(), name=f"edgemq-bridge-{name}")

    async def stop(self) -> None:
        """End every link cleanly; what is queued stays (in the store, if persistence is on)."""
        async with self._replacing:  # a change in progress finishes first; none starts after
            self._stopped = True
            for name in list(self._tasks):
                await self._stop_one(name)

    async def _stop_one(self, name: str) -> None:
        await self._bridges[name].close()
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the admin API ----------------------------------------------------------------------

    def stats(self) -> list[BridgeStats]:
        return [bridge.stats() for bridge in self._bridges.values()]

    def settings(self, name: str) -> BridgeSettings | None:
        """The settings a running bridge uses, with its subscriptions as changed at run time
        (None: no such bridge)."""
        settings = self._settings.get(name)
        return settings.model_copy(update={"subscription": list(self._rules[name])}) if settings else None

    async def replace(self, name: str, settings: BridgeSettings) -> bool:
        """Run bridge ``name`` with new settings, keeping its queue, pause and figures; False if
        there is none. ValueError if the new settings cannot be used (a TLS file): the bridge
        runs on as it was."""
        async with self._replacing:  # one at a time: each takes over the bridge the last one made
            if name not in self._bridges or self._stopped:
                return False
            rules = list(settings.subscription)
            try:
                bridge = self._make(name, settings, [], rules)
            except (OSError, ssl.SSLError) as exc:
                tls = settings.ssl or BridgeSsl()
                files = [f for f in (tls.cacertfile, tls.certfile, tls.keyfile) if f]
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ValueError(f"bridge {name}: cannot use its TLS files {files}: {reason}") from None
            await self._stop_one(name)
            bridge.take_over(self._bridges[name])
            self._settings[name], self._rules[name], self._bridges[name] = settings, rules, bridge
            self._tasks[name] = asyncio.create_task(bridge.run(), name=f"edgemq-bridge-{name}")
        self._on_change()
        return True

    async def subscribe(self, name: str, rules: list[Subscription]) -> bool:
        """Add remote subscriptions to a running bridge (LinkError if the upstream does not answer)."""
        bridge = self._bridges.get(name)
        if bridge is None:
            return False
        added = {rule.remote_topic for rule in rules}
        self._rules[name] = [r for r in self._rules[name] if r.remote_topic not in added] + rules
        await bridge.subscribe_remote([(rule.remote_topic, rule.qos) for rule in rules])
        return True

    async def unsubscribe(self, name: str, filters: list[str]) -> bool:
        """Remove remote subscriptions from a running bridge."""
        bridge = self._bridges.get(name)
        if bridge is None:
            return False
        self._rules[name] = [r for r in self._rules[name] if r.remote_topic not in filters]
        await bridge.unsubscribe_remote(filters)
        return True

    def pause(self, name: str, paused: bool) -> bool:
        """Stop or resume sending on one bridge; False if there is no such bridge."""
        bridge = self._bridges.get(name)
        if bridge is None:
            return False
        bridge.pause(paused)
        return True


def _carry(rules: Sequence[Forward | Subscription], topic: str, qos: int, retain: bool) -> tuple[str, int, bool] | None:
    """What the first rule matching ``topic`` makes of the message on the other side; None if no
    rule matches (ValueError if the match maps to no valid topic)."""
    for rule in rules:
        if topic_matches(rule.source, topic):
            return rule.carry(topic, qos, retain)
    return None
