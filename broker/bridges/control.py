"""``BridgeControls``: what the admin API may do to the running bridges (``EdgeBroker.bridges``)."""

from __future__ import annotations

from collections.abc import Callable

from broker.bridges.bridge_set import BridgeSet
from broker.config.bridge_settings import Bridge, Subscription

__all__ = ["BridgeControls"]


class BridgeControls:
    """Bridge requests of ``BrokerControl`` (its ``bridges``), served by the running ``BridgeSet``."""

    def __init__(self, running: Callable[[], BridgeSet | None]) -> None:
        self._running = running

    @property
    def _bridges(self) -> BridgeSet | None:
        return self._running()

    def settings(self, name: str) -> Bridge | None:
        """The settings a running bridge uses; None if no bridge of that name runs."""
        return self._bridges.settings(name) if self._bridges is not None else None

    async def change(self, name: str, settings: Bridge) -> bool:
        """Run a bridge with new settings, keeping its queue; False if there is none; ValueError
        if the settings cannot be used (the bridge runs on as it was)."""
        return self._bridges is not None and await self._bridges.replace(name, settings)

    async def subscribe(self, name: str, rules: list[Subscription]) -> bool:
        """Add remote subscriptions to a bridge (LinkError if the upstream does not answer)."""
        return self._bridges is not None and await self._bridges.subscribe(name, rules)

    async def unsubscribe(self, name: str, filters: list[str]) -> bool:
        """Remove remote subscriptions from a bridge."""
        return self._bridges is not None and await self._bridges.unsubscribe(name, filters)

    def pause(self, name: str, paused: bool) -> bool:
        """Stop or resume forwarding on a bridge; False if there is none."""
        return self._bridges is not None and self._bridges.pause(name, paused)
