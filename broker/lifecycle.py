"""``EdgeBroker``: the MQTT broker and its admin API in the caller's event loop."""

from __future__ import annotations

import ipaddress
import logging
from types import TracebackType

from admin_api import create_app
from broker.amqtt_adapter import MqttCore
from broker.http_server import AdminHttpServer
from broker.settings import BrokerSettings
from broker.state import BrokerState

__all__ = ["EdgeBroker"]

log = logging.getLogger("edgemq")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only the local machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EdgeBroker:
    """An MQTT broker with a NanoMQ-compatible admin API, as an async context manager.

    Nothing happens in ``__init__``; ``start`` (or ``async with``) binds the listeners,
    ``stop`` shuts down in order (MQTT listener and clients, then the admin API) within
    ``settings.shutdown_timeout``. Signal handling is left to the caller.
    """

    def __init__(self, settings: BrokerSettings | None = None, *, state: BrokerState | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self.state = state or BrokerState()
        self._mqtt = MqttCore(self.settings, self.state)
        self._http = AdminHttpServer(
            create_app(self.state, self, self.settings),
            self.settings.http_server.ip_addr,
            self.settings.http_server.port,
        )

    async def __aenter__(self) -> EdgeBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the MQTT side, then the admin API; undo both if either fails."""
        self._warn_about_exposure()
        await self._mqtt.start()
        try:
            await self._http.start()
        except BaseException:
            await self._mqtt.stop(self.settings.shutdown_timeout)
            raise
        log.info("edgemq ready: MQTT on %s, admin API on %s", self.mqtt_url, self.api_url)

    async def stop(self) -> None:
        """Stop the MQTT side, then the admin API, within the configured time limit."""
        await self._mqtt.stop(self.settings.shutdown_timeout)
        await self._http.stop()
        log.info("edgemq stopped")

    @property
    def mqtt_ready(self) -> bool:
        """Whether the MQTT listener accepts connections."""
        return self._mqtt.is_listening

    @property
    def mqtt_address(self) -> tuple[str, int]:
        """The bound (host, port) of the MQTT listener."""
        return self._mqtt.address

    @property
    def http_address(self) -> tuple[str, int]:
        """The bound (host, port) of the admin API."""
        return self._http.address

    @property
    def mqtt_url(self) -> str:
        """``mqtt://host:port`` of the MQTT listener."""
        return "mqtt://{}:{}".format(*_url_host_port(self.mqtt_address))

    @property
    def api_url(self) -> str:
        """Base URL of the admin API, e.g. ``http://127.0.0.1:8081/api``."""
        return "http://{}:{}/api".format(*_url_host_port(self.http_address))

    def _warn_about_exposure(self) -> None:
        http = self.settings.http_server
        if http.uses_default_password and not is_loopback(http.ip_addr):
            log.warning(
                "the admin API listens on %s with the default credentials: set http_server username/password",
                http.ip_addr,
            )


def _url_host_port(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (f"[{host}]" if ":" in host else host), port
