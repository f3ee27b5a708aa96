"""``EdgeBroker``: the MQTT broker and its admin API in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from admin_api import create_app
from broker.admin_http.server import AdminHttpServer
from broker.amqtt_adapter import MqttCore
from broker.bridges.control import BridgeControls
from broker.clock import Clock
from broker.config.changes import ConfigUnavailable, as_started, plan_change, plan_live_change, with_section
from broker.config.settings import BrokerSettings, LiveSettings
from broker.config.source import ConfigError, ConfigSource
from broker.exposure import warn_about_exposure
from broker.faults import Faults
from broker.log_output import python_log_level
from broker.mqtt.message_properties import MessageProperties
from broker.state import BrokerState, ClientSnapshot, RoutedMessage, Stats
from broker.task_group import TaskGroup
from broker.testing import helpers
from broker.testing.helpers import Capture, MessageHistory
from broker.testing.threaded import ThreadedBroker, run_in_thread

__all__ = ["EdgeBroker"]

log = logging.getLogger("edgemq")

_RESTART = "edgemq-restart"  # the task of a restart requested through the admin API
_STRAGGLER_GRACE = 1.0  # seconds for tasks cancelled at the end of a stop to end


class EdgeBroker:
    """An MQTT broker with a NanoMQ-compatible admin API, as an async context manager.

    Nothing happens in ``__init__``; ``start`` (or ``async with``) binds the listeners,
    ``stop`` shuts down in order (MQTT listeners and clients, then the admin API) within
    ``settings.shutdown_timeout``. Signal handling is left to the caller.

    ``config`` names where the settings came from, so that the admin API can change the
    configuration file (req 12) and ``restart`` can read it again; without ``settings`` they
    are loaded from ``config`` by ``start``. ``history`` keeps the last
    N routed messages for ``wait_for_message`` (0 = off, the default for production use;
    ``run_in_thread`` and the pytest fixtures turn it on). ``clock`` decides keep-alive and the
    CONNECT deadline (the event loop's by default; tests pass broker.testing.clock.ManualClock).
    """

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        state: BrokerState | None = None,
        history: int = 0,
        config: ConfigSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.live = LiveSettings(settings or BrokerSettings())
        self.state = state or BrokerState()
        self._config = config
        self._load_config_on_start = settings is None and config is not None
        self._history = MessageHistory(self.state, history) if history > 0 else None
        self.tasks = TaskGroup()
        """The broker's tasks (connections, restarts), named; see broker/task_group.py."""
        self.faults = Faults(clock)
        """Faults a test enables (refused connects, dropped deliveries...); see broker/faults."""
        self._mqtt = MqttCore(self.live, self.state, self.tasks, clock, faults=self.faults)
        self.bridges = BridgeControls(lambda: self._mqtt.bridges)
        """What the admin API may do to the running bridges."""
        self._app = create_app(self.state, self, self.live)
        self._http: AdminHttpServer | None = None
        self._restart_lock = asyncio.Lock()
        self._stop_requested = asyncio.Event()
        self._started_at: datetime | None = None
        self._running = False  # from start() until stop(): start() is not re-entrant

    @property
    def settings(self) -> BrokerSettings:
        """The running settings."""
        return self.live.current

    async def __aenter__(self) -> EdgeBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the MQTT side, then the admin API; undo both if either fails. A broker that is
        running (or starting) already raises RuntimeError; after ``stop`` it may start again."""
        if self._running:
            raise RuntimeError("the broker is running already: stop() it before starting it again")
        self._running = True
        try:
            if self._load_config_on_start and self._config is not None:
                self.live.current = self._config.load()
            warn_about_exposure(self.settings)
            self.faults.attach(self._mqtt, asyncio.get_running_loop())
            await self._mqtt.start()
        except BaseException:
            self._running = False
            raise
        try:
            self._http = await self._start_http(self.settings)
        except BaseException:
            await self._mqtt.stop(self.settings.shutdown_timeout)
            self._running = False
            raise
        self._started_at = datetime.now(UTC)
        mqtt, api, dashboard = ", ".join(self.mqtt_urls), self.api_url, self.dashboard_url
        log.info("edgemq ready: MQTT on %s, admin API on %s, dashboard on %s", mqtt, api, dashboard)

    async def _start_http(self, settings: BrokerSettings) -> AdminHttpServer:
        http = AdminHttpServer(self._app, settings.http_server.ip_addr, settings.http_server.port, self.live)
        await http.start()
        return http

    async def stop(self) -> None:
        """Stop the MQTT side (listeners, then every connection, drained within the configured
        time limit), then the admin API; then cancel whatever is left in ``tasks``. Faults end first."""
        self.faults.clear(discard_delayed=True)
        restarts = self.tasks.running(_RESTART)
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        await self._mqtt.stop(self.settings.shutdown_timeout)
        if self._http is not None:
            await self._http.stop()
            self._http = None
        left = await self.tasks.cancel(_STRAGGLER_GRACE)
        if left:
            log.warning("tasks still running after the stop were cancelled: %s", ", ".join(left))
        self._running = False
        log.info("edgemq stopped")

    # -- control (what the admin API may ask) -------------------------------------------------

    @property
    def mqtt_ready(self) -> bool:
        """Whether every MQTT listener accepts connections."""
        return self._mqtt.is_listening

    def request_stop(self) -> None:
        """Ask whoever runs the broker (the CLI) to stop it; see ``wait_for_stop_request``."""
        self._stop_requested.set()

    async def wait_for_stop_request(self) -> None:
        """Return once ``request_stop`` was called (by req 10 or a signal handler)."""
        await self._stop_requested.wait()

    def request_restart(self) -> None:
        """Restart in the background (the admin API answers first)."""
        task = self.tasks.spawn(self.restart(), _RESTART)
        task.add_done_callback(self._restart_done)

    def _restart_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("restart failed", exc_info=task.exception())

    async def wait_for_restarts(self) -> None:
        """Return once every requested restart has finished."""
        await asyncio.gather(*self.tasks.running(_RESTART))

    async def restart(self) -> None:
        """Re-read the configuration, close every listener and connection, listen again (a
        listener on port 0 keeps the port it had, as ``stop`` and ``start`` do).

        Retained messages and persistent sessions survive. If the admin API's address
        changed, it moves there. Concurrent restarts run one after the other.
        """
        async with self._restart_lock:
            old = self.settings
            new = old
            if self._config is not None:
                try:
                    new = self._config.load()
                except ConfigError as exc:
                    log.error("restart: the configuration is invalid, keeping the running one:\n%s", exc)
            new = as_started(new, old)
            log.info("restarting the MQTT side")
            self.live.current = new
            try:
                await self._mqtt.restart(new.shutdown_timeout)
            except OSError as exc:
                log.error("restart: cannot listen as configured (%s); listening as before", exc)
                self.live.current = new = old
                await self._mqtt.listen()
            _apply_log_level(old, new)
            moves = (new.http_server.ip_addr, new.http_server.port) != (old.http_server.ip_addr, old.http_server.port)
            if moves and not await self._move_http(new):  # report the address the admin API is still on
                still_at = old.http_server.model_dump(include={"ip_addr", "port"})
                http = new.http_server.model_dump() | still_at  # the rest of the section applies
                self.live.current = with_section(self.live.current, "http_server", http)
            log.info("edgemq restarted: MQTT on %s, admin API on %s", self.mqtt_url, self.api_url)

    async def _move_http(self, settings: BrokerSettings) -> bool:
        """Serve the admin API at the address of ``settings``; False if it stays where it was."""
        try:
            moved = await self._start_http(settings)
        except OSError as exc:
            log.error("restart: the admin API cannot move to %s:%s (%s); it stays where it was",
                      settings.http_server.ip_addr, settings.http_server.port, exc)  # fmt: skip
            return False
        previous, self._http = self._http, moved
        if previous is not None:
            await previous.stop()
        return True

    def update_config(self, change: dict[str, Any]) -> list[str]:
        """Validate and write a change (req 12); apply live keys now, return the others.

        Raises ConfigUnavailable without a configuration file, ConfigError if invalid, OSError if
        the override file cannot be written.
        """
        if self._config is None:
            raise ConfigUnavailable
        planned = plan_change(self._config, self.settings, change)
        self._config.write_override(planned.override)
        _apply_log_level(self.settings, planned.running)
        self.live.current = planned.running
        return planned.restart_required

    def apply_live(self, change: dict[str, Any]) -> None:
        """Apply live-changeable settings now without writing them (v4 /reload)."""
        planned = plan_live_change(self.settings, change)
        _apply_log_level(self.settings, planned)
        self.live.current = planned

    @property
    def started_at(self) -> datetime:
        """When ``start`` last succeeded (UTC)."""
        if self._started_at is None:
            raise RuntimeError("the broker is not running")
        return self._started_at

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        client_id: str | None = None,
        properties: MessageProperties | None = None,
    ) -> None:
        """Publish a message through the broker, as a client ``client_id`` (optional) would, with
        the MQTT 5 ``properties`` (``MessageProperties.from_properties``) its v5 subscribers get."""
        await self._mqtt.publish(topic, payload, qos, retain=retain, client_id=client_id, properties=properties)

    async def kick(self, client_id: str, *, clean: bool = False) -> bool:
        """Disconnect a client (its will is published); ``clean`` also discards its session."""
        return await self._mqtt.kick(client_id, clean=clean)

    def retained_messages(self) -> list[tuple[str, int, int]]:
        """(topic, qos, payload size) of every retained message."""
        return self._mqtt.retained()

    def retained_message(self, topic: str) -> tuple[int, bytes] | None:
        """(qos, payload) of ``topic``'s retained message, or None."""
        return self._mqtt.retained_message(topic)

    def delete_retained(self, topic: str) -> bool:
        """Forget the retained message of ``topic``; False if there is none."""
        return self._mqtt.delete_retained(topic)

    # -- testing helpers -------------------------------------------------------------------

    @classmethod
    def run_in_thread(
        cls, settings: BrokerSettings | None = None, *, history: int = 10_000
    ) -> contextlib.AbstractContextManager[ThreadedBroker]:
        """A broker running on a background thread, for synchronous code; stopped on exit."""
        return run_in_thread(cls(settings, history=history))

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
        """Clear every fault, disconnect every client (no wills), drop sessions, retained
        messages, counters and history."""
        self.faults.clear(discard_delayed=True)
        await self._mqtt.reset()
        self.state.reset_counters()
        if self._history is not None:
            self._history.clear()

    # -- addresses -------------------------------------------------------------------------

    @property
    def mqtt_addresses(self) -> dict[str, tuple[str, int]]:
        """Bound (host, port) of every MQTT listener, by name (tcp, ssl, ws)."""
        return self._mqtt.addresses

    @property
    def mqtt_address(self) -> tuple[str, int]:
        """The bound (host, port) of the plain TCP listener (else the first listener)."""
        addresses = self._mqtt.addresses
        if not addresses:
            raise RuntimeError("no MQTT listener is running")
        return addresses.get("tcp") or next(iter(addresses.values()))

    @property
    def http_address(self) -> tuple[str, int]:
        """The bound (host, port) of the admin API."""
        if self._http is None:
            raise RuntimeError("the admin API is not running")
        return self._http.address

    @property
    def mqtt_url(self) -> str:
        """``mqtt://host:port`` of the MQTT listener."""
        return "mqtt://{}:{}".format(*_url_host_port(self.mqtt_address))

    @property
    def mqtt_urls(self) -> list[str]:
        """The URL of every MQTT listener (``mqtt://``, ``mqtts://``, ``ws://host:port/path``),
        plain TCP first."""
        schemes = {"tcp": "mqtt", "ssl": "mqtts", "ws": "ws"}
        ws = self.settings.listeners.ws
        urls = []
        for name, address in sorted(self._mqtt.addresses.items(), key=lambda item: list(schemes).index(item[0])):
            path = ws.path if name == "ws" and ws is not None else ""
            urls.append("{}://{}:{}{}".format(schemes[name], *_url_host_port(address), path))
        return urls

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
    def dashboard_url(self) -> str:
        """URL of the browser dashboard, e.g. ``http://127.0.0.1:8081/dashboard`` (same credentials)."""
        return "http://{}:{}/dashboard".format(*_url_host_port(self.http_address))

    @property
    def admin_auth(self) -> tuple[str, str]:
        """(username, password) of the admin API, e.g. for ``httpx.Client(auth=...)``."""
        return self.settings.http_server.username, self.settings.http_server.password


def _apply_log_level(old: BrokerSettings, new: BrokerSettings) -> None:
    if new.log.level != old.log.level:
        logging.getLogger("edgemq").setLevel(python_log_level(new.log.level))


def _url_host_port(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (f"[{host}]" if ":" in host else host), port
