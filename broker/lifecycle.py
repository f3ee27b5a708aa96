"""``EdgeBroker``: the MQTT broker and its admin API in the caller's event loop."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from types import TracebackType

from admin_api import create_app
from broker import helpers
from broker.amqtt_adapter import MqttCore
from broker.helpers import Capture, MessageHistory
from broker.http_server import AdminHttpServer
from broker.settings import BrokerSettings
from broker.state import BrokerState, ClientSnapshot, RoutedMessage, Stats
from broker.threaded import ThreadedBroker, run_in_thread

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

    ``history`` keeps the last N routed messages for ``wait_for_message`` (0 = off, the
    default for production use; ``run_in_thread`` and the pytest fixtures turn it on).
    """

    def __init__(
        self, settings: BrokerSettings | None = None, *, state: BrokerState | None = None, history: int = 0
    ) -> None:
        self.settings = settings or BrokerSettings()
        self.state = state or BrokerState()
        self._history = MessageHistory(self.state, history) if history > 0 else None
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

    @classmethod
    def run_in_thread(
        cls, settings: BrokerSettings | None = None, *, history: int = 10_000
    ) -> contextlib.AbstractContextManager[ThreadedBroker]:
        """A broker running on a background thread, for synchronous code; stopped on exit."""
        return run_in_thread(cls(settings, history=history))

    # -- testing helpers -------------------------------------------------------------------

    def capture(self, topic_filter: str) -> Capture:
        """Start recording every routed message whose topic matches ``topic_filter``."""
        return Capture(self.state, topic_filter)

    async def wait_for_message(self, topic_filter: str, timeout: float = helpers.DEFAULT_TIMEOUT) -> RoutedMessage:
        """The first message on a topic matching ``topic_filter`` since start or ``reset()``."""
        if self._history is None:
            raise RuntimeError("wait_for_message needs the message history: create the broker with history=N")
        return await helpers.wait_for_message(self.state, self._history, topic_filter, timeout)

    async def wait_for_client(self, client_id: str, timeout: float = helpers.DEFAULT_TIMEOUT) -> ClientSnapshot:
        """Wait until ``client_id`` is connected."""
        return await helpers.wait_for_client(self.state, client_id, timeout)

    async def wait_for_subscription(
        self, topic_filter: str, client_id: str | None = None, timeout: float = helpers.DEFAULT_TIMEOUT
    ) -> str:
        """Wait until a client (``client_id``, if given) holds ``topic_filter``; return its id."""
        return await helpers.wait_for_subscription(self.state, topic_filter, client_id, timeout)

    def stats(self) -> Stats:
        """The req 2 numbers."""
        return self.state.stats()

    async def reset(self) -> None:
        """Disconnect every client (no wills), drop sessions, retained messages, counters, history."""
        await self._mqtt.reset()
        self.state.reset_counters()
        if self._history is not None:
            self._history.clear()

    # -- addresses -------------------------------------------------------------------------

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
    def mqtt_host(self) -> str:
        """The MQTT listener's bound host."""
        return self.mqtt_address[0]

    @property
    def mqtt_port(self) -> int:
        """The MQTT listener's bound port."""
        return self.mqtt_address[1]

    @property
    def api_url(self) -> str:
        """Base URL of the admin API, e.g. ``http://127.0.0.1:8081/api``."""
        return "http://{}:{}/api".format(*_url_host_port(self.http_address))

    @property
    def admin_auth(self) -> tuple[str, str]:
        """(username, password) of the admin API, e.g. for ``httpx.Client(auth=...)``."""
        return self.settings.http_server.username, self.settings.http_server.password

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
