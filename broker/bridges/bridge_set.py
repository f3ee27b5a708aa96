"""``BridgeSet``: the configured bridges, offered every routed message.

The router calls ``offer`` for each message it routes: every bridge (but the one the message
came from: no loops) whose ``forwards`` match queues it with its mapped topic, QoS (never above
the message's) and retain flag, in the same event-loop turn, so its row in the store is
committed with the PUBLISH. Messages from an upstream subscription are published locally
through ``publish_local`` with the bridge as their origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable

from broker.bridges.bridge import Bridge, BridgeStats
from broker.bridges.link import LinkOptions
from broker.bridges.topics import map_topic
from broker.config.bridge_settings import Bridge as BridgeSettings
from broker.config.bridge_settings import BridgeSsl
from broker.mqtt.topics import topic_matches
from broker.persistence.journal import Journal, StoredForward

__all__ = ["BridgeSet", "PublishFrom"]

log = logging.getLogger("edgemq.bridge")

PublishFrom = Callable[[str, bytes, int, bool, str], Awaitable[None]]
"""Publish locally as coming from a bridge: (topic, payload, qos, retain, bridge name); returns
once durable."""


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
    ) -> None:
        self._settings = {name: b for name, b in configured.items() if b.enable}
        self._publish_from = publish_from
        self._bridges: dict[str, Bridge] = {}
        self._tasks: list[asyncio.Task[None]] = []
        for name, settings in self._settings.items():
            host, port = settings.address
            options = LinkOptions(
                host,
                port,
                settings.clientid,
                settings.username,
                settings.password,
                round(settings.keepalive),
                settings.clean_start,
                tls_context(settings.ssl) if settings.tls else None,
            )
            self._bridges[name] = Bridge(
                name,
                settings.server,
                options,
                subscriptions=[(s.remote_topic, s.qos) for s in settings.subscription],
                receive=self._receiver(name, settings),
                journal=journal,
                max_queued=settings.max_send_queue_len,
                max_inflight=settings.max_inflight,
                restored=restored.get(name, []),
                on_change=on_change,
            )
        for name in restored.keys() - self._bridges.keys():
            log.warning("the store holds %d messages for bridge %s, which is not configured", len(restored[name]), name)

    def __bool__(self) -> bool:
        return bool(self._bridges)

    def offer(self, topic: str, payload: bytes, qos: int, retain: bool, origin: str | None) -> None:
        """Queue a routed message on every bridge whose forwards match (not on ``origin``)."""
        for name, bridge in self._bridges.items():
            if name == origin:
                continue
            for rule in self._settings[name].forwards:
                if topic_matches(rule.local_topic, topic):
                    try:
                        remote = map_topic(topic, rule.local_topic, rule.remote_topic, rule.prefix, rule.suffix)
                    except ValueError as exc:  # the mapping makes no valid topic of this one
                        log.debug("bridge %s: not forwarded: %s", name, exc)
                        bridge.dropped += 1
                        break
                    bridge.enqueue(remote, payload, min(rule.qos, qos), retain if rule.retain is None else rule.retain)
                    break  # the first matching rule decides

    def _receiver(self, name: str, settings: BridgeSettings) -> Callable[[str, bytes, int, bool], Awaitable[None]]:
        async def receive(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            for rule in settings.subscription:
                if topic_matches(rule.remote_topic, topic):
                    try:
                        local = map_topic(topic, rule.remote_topic, rule.local_topic, rule.prefix, rule.suffix)
                    except ValueError as exc:
                        log.debug("bridge %s: not published locally: %s", name, exc)
                        return
                    keep = retain if rule.retain is None else rule.retain
                    await self._publish_from(local, payload, min(rule.qos, qos), keep, name)
                    return

        return receive

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every bridge's link (each reconnects on its own until ``stop``)."""
        for name, bridge in self._bridges.items():
            self._tasks.append(asyncio.create_task(bridge.run(), name=f"edgemq-bridge-{name}"))

    async def stop(self) -> None:
        """End every link cleanly; what is queued stays (in the store, if persistence is on)."""
        for bridge in self._bridges.values():
            await bridge.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- the admin API ----------------------------------------------------------------------

    def stats(self) -> list[BridgeStats]:
        return [bridge.stats() for bridge in self._bridges.values()]

    def pause(self, name: str, paused: bool) -> bool:
        """Stop or resume sending on one bridge; False if there is no such bridge."""
        bridge = self._bridges.get(name)
        if bridge is None:
            return False
        bridge.pause(paused)
        return True
