"""An ``EdgeBroker`` on a background thread with its own event loop, for synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from broker.config.settings import BrokerSettings
from broker.faults import Faults
from broker.mqtt.message_properties import MessageProperties
from broker.state import ClientSnapshot, RoutedMessage, Stats
from broker.testing.helpers import DEFAULT_TIMEOUT, Capture

__all__ = ["AsyncThreadedBroker", "ThreadedBroker", "run_in_thread"]

T = TypeVar("T")
_SLACK = 5.0  # extra seconds a blocking call waits beyond the broker-side timeout


class EmbeddedBroker(Protocol):
    """What a broker run on a thread offers (``broker.EdgeBroker``; named here so that this
    module does not import the lifecycle module, which imports it)."""

    @property
    def mqtt_url(self) -> str: ...
    @property
    def mqtt_address(self) -> tuple[str, int]: ...
    @property
    def api_url(self) -> str: ...
    @property
    def dashboard_url(self) -> str: ...
    @property
    def http_address(self) -> tuple[str, int]: ...
    @property
    def admin_auth(self) -> tuple[str, str]: ...
    @property
    def settings(self) -> BrokerSettings: ...
    @property
    def faults(self) -> Faults: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def restart(self) -> None: ...
    async def reset(self) -> None: ...
    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> None: ...
    def capture(self, topic_filter: str) -> Capture: ...
    def stats(self) -> Stats: ...
    async def wait_for_message(self, topic_filter: str, timeout: float) -> RoutedMessage: ...
    async def wait_for_client(self, client_id: str, timeout: float) -> ClientSnapshot: ...
    async def wait_for_subscription(self, topic_filter: str, client_id: str | None, timeout: float) -> str: ...


class _Bridge:
    """Submits work to the broker's loop from another thread."""

    def __init__(self, broker: EmbeddedBroker, loop: asyncio.AbstractEventLoop) -> None:
        self.broker = broker
        self.loop = loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the loop thread (the state is not thread-safe)."""

        async def run() -> T:
            return function()

        return self.submit(run()).result(DEFAULT_TIMEOUT + _SLACK)


class AsyncThreadedBroker:
    """The waits of a threaded broker, awaitable from another event loop (async tests)."""

    def __init__(self, bridge: _Bridge) -> None:
        self._bridge = bridge

    async def wait_for_message(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> RoutedMessage:
        """See ``EdgeBroker.wait_for_message``."""
        return await asyncio.wrap_future(
            self._bridge.submit(self._bridge.broker.wait_for_message(topic_filter, timeout))
        )

    async def wait_for_client(self, client_id: str, timeout: float = DEFAULT_TIMEOUT) -> ClientSnapshot:
        """See ``EdgeBroker.wait_for_client``."""
        return await asyncio.wrap_future(self._bridge.submit(self._bridge.broker.wait_for_client(client_id, timeout)))

    async def wait_for_subscription(
        self, topic_filter: str, client_id: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """See ``EdgeBroker.wait_for_subscription``."""
        coro = self._bridge.broker.wait_for_subscription(topic_filter, client_id, timeout)
        return await asyncio.wrap_future(self._bridge.submit(coro))

    async def reset(self) -> None:
        """See ``EdgeBroker.reset``."""
        await asyncio.wrap_future(self._bridge.submit(self._bridge.broker.reset()))

    async def restart(self) -> None:
        """See ``ThreadedBroker.restart``."""
        await asyncio.wrap_future(self._bridge.submit(self._bridge.broker.restart()))


class ThreadedBroker:
    """A running broker seen from another thread: addresses, helpers, blocking waits.

    ``aio`` offers the same waits as coroutines for code running in its own event loop;
    ``faults`` is the broker's own (its methods run on the broker's loop when called from here).
    """

    def __init__(self, broker: EmbeddedBroker, loop: asyncio.AbstractEventLoop) -> None:
        self._bridge = _Bridge(broker, loop)
        self.aio = AsyncThreadedBroker(self._bridge)
        self.faults = broker.faults
        self._note_addresses()

    def _note_addresses(self) -> None:
        broker = self._bridge.broker
        self.mqtt_url = broker.mqtt_url
        self.mqtt_host, self.mqtt_port = broker.mqtt_address
        self.api_url = broker.api_url
        self.dashboard_url = broker.dashboard_url
        self.http_address = broker.http_address
        self.admin_auth = broker.admin_auth
        self.settings = broker.settings

    def restart(self) -> None:
        """Close every connection (no wills) and listen again on the same port; sessions and
        retained messages are kept (``EdgeBroker.restart``)."""
        self._bridge.submit(self._bridge.broker.restart()).result(self._lifecycle_wait())
        self._bridge.call(self._note_addresses)

    def stop(self) -> None:
        """Stop the broker (its thread goes on, for ``start``); clients see the connection end."""
        self._bridge.submit(self._bridge.broker.stop()).result(self._lifecycle_wait())

    def start(self) -> None:
        """Start the broker again after ``stop``: MQTT on the same port, the admin API on a free
        one if it was configured on port 0 (see ``api_url``)."""
        self._bridge.submit(self._bridge.broker.start()).result(self._lifecycle_wait())
        self._bridge.call(self._note_addresses)

    def _lifecycle_wait(self) -> float:
        return self._bridge.broker.settings.shutdown_timeout + DEFAULT_TIMEOUT + _SLACK

    def capture(self, topic_filter: str) -> Capture:
        """See ``EdgeBroker.capture``."""
        return self._bridge.call(lambda: self._bridge.broker.capture(topic_filter))

    def stats(self) -> Stats:
        """See ``EdgeBroker.stats``."""
        return self._bridge.call(self._bridge.broker.stats)

    def wait_for_message(self, topic_filter: str, timeout: float = DEFAULT_TIMEOUT) -> RoutedMessage:
        """See ``EdgeBroker.wait_for_message``."""
        return self._bridge.submit(self._bridge.broker.wait_for_message(topic_filter, timeout)).result(timeout + _SLACK)

    def wait_for_client(self, client_id: str, timeout: float = DEFAULT_TIMEOUT) -> ClientSnapshot:
        """See ``EdgeBroker.wait_for_client``."""
        return self._bridge.submit(self._bridge.broker.wait_for_client(client_id, timeout)).result(timeout + _SLACK)

    def wait_for_subscription(
        self, topic_filter: str, client_id: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """See ``EdgeBroker.wait_for_subscription``."""
        coro = self._bridge.broker.wait_for_subscription(topic_filter, client_id, timeout)
        return self._bridge.submit(coro).result(timeout + _SLACK)

    def reset(self) -> None:
        """See ``EdgeBroker.reset``."""
        self._bridge.submit(self._bridge.broker.reset()).result(DEFAULT_TIMEOUT + _SLACK)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> None:
        """Publish through the broker (``EdgeBroker.publish``), with MQTT 5 ``properties`` for its
        v5 subscribers; returns once it is routed."""
        coro = self._bridge.broker.publish(topic, payload, qos, retain=retain, properties=properties)
        self._bridge.submit(coro).result(DEFAULT_TIMEOUT + _SLACK)


class _LoopThread:
    """A thread running one event loop that starts the broker, waits, and stops it."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="edgemq-broker", daemon=True)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._broker.start()
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._broker.stop()

    def start(self, timeout: float) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout)
            raise TimeoutError(f"the broker thread did not start within {timeout}s")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self, timeout: float) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the broker thread did not stop within {timeout}s")


@contextlib.contextmanager
def run_in_thread(broker: EmbeddedBroker, start_timeout: float = 10.0) -> Iterator[ThreadedBroker]:
    """Start ``broker`` on a background thread; stop it and join the thread on exit."""
    runner = _LoopThread(broker)
    runner.start(start_timeout)
    assert runner.loop is not None
    try:
        yield ThreadedBroker(broker, runner.loop)
    finally:
        runner.stop(broker.settings.shutdown_timeout + _SLACK)
