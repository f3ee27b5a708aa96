"""Test helpers of an embedded broker: message capture and waits that explain their timeouts."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType

from broker.mqtt.topics import topic_matches
from broker.state import BrokerState, ClientSnapshot, RoutedMessage

__all__ = ["Capture", "MessageHistory", "wait_for_client", "wait_for_message", "wait_for_subscription", "wait_until"]

DEFAULT_TIMEOUT = 5.0


class Capture:
    """Records every routed message whose topic matches ``topic_filter`` until stopped.

    Safe to read from any thread; use it as a context manager or call ``stop()``.
    """

    def __init__(self, state: BrokerState, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self._messages: list[RoutedMessage] = []
        self._lock = threading.Lock()
        self._remove: Callable[[], None] | None = state.observe_messages(self._observe)

    def _observe(self, message: RoutedMessage) -> None:
        if topic_matches(self.topic_filter, message.topic):
            with self._lock:
                self._messages.append(message)

    @property
    def messages(self) -> list[RoutedMessage]:
        """The messages recorded so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def payloads(self) -> list[bytes]:
        """The payloads recorded so far, oldest first."""
        return [m.payload for m in self.messages]

    def stop(self) -> None:
        """Stop recording (the recorded messages stay readable)."""
        if self._remove is not None:
            self._remove()
            self._remove = None

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MessageHistory:
    """The last ``size`` routed messages, so a wait can find a message that came before it."""

    def __init__(self, state: BrokerState, size: int) -> None:
        self._messages: deque[RoutedMessage] = deque(maxlen=size)
        state.observe_messages(self._messages.append)

    def first(self, topic_filter: str) -> RoutedMessage | None:
        """The oldest remembered message matching ``topic_filter``."""
        return next((m for m in self._messages if topic_matches(topic_filter, m.topic)), None)

    def topics(self, limit: int = 20) -> list[str]:
        """The most recent distinct topics, newest first (for error messages)."""
        seen: list[str] = []
        for message in reversed(self._messages):
            if message.topic not in seen:
                seen.append(message.topic)
                if len(seen) == limit:
                    break
        return seen

    def clear(self) -> None:
        """Forget every message."""
        self._messages.clear()


async def wait_until(state: BrokerState, predicate: Callable[[BrokerState], bool], timeout: float) -> None:
    """Return once ``predicate(state)`` holds, checked after every change of the state; raise
    TimeoutError after ``timeout`` seconds."""
    if predicate(state):
        return
    held: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check() -> None:
        if not held.done() and predicate(state):
            held.set_result(None)

    remove = state.on_change(check)
    try:
        await asyncio.wait_for(held, timeout)
    finally:
        remove()


async def wait_for_message(
    state: BrokerState, history: MessageHistory, topic_filter: str, timeout: float
) -> RoutedMessage:
    """The first message matching ``topic_filter`` since start or reset, waiting up to ``timeout``."""
    found = history.first(topic_filter)
    if found is not None:
        return found
    arrived: asyncio.Future[RoutedMessage] = asyncio.get_running_loop().create_future()

    def observe(message: RoutedMessage) -> None:
        if not arrived.done() and topic_matches(topic_filter, message.topic):
            arrived.set_result(message)

    remove = state.observe_messages(observe)
    try:
        return await asyncio.wait_for(arrived, timeout)
    except TimeoutError:
        raise TimeoutError(
            f"no message on {topic_filter!r} within {timeout}s; topics seen: {history.topics()}"
        ) from None
    finally:
        remove()


async def wait_for_client(state: BrokerState, client_id: str, timeout: float) -> ClientSnapshot:
    """The snapshot of ``client_id`` once it is connected."""

    def connected(s: BrokerState) -> bool:
        client = s.client(client_id)
        return client is not None and client.connected

    try:
        await wait_until(state, connected, timeout)
    except TimeoutError:
        seen = [c.info.client_id for c in state.clients() if c.connected]
        raise TimeoutError(f"client {client_id!r} did not connect within {timeout}s; connected: {seen}") from None
    snapshot = state.client(client_id)
    assert snapshot is not None
    return snapshot


async def wait_for_subscription(state: BrokerState, topic_filter: str, client_id: str | None, timeout: float) -> str:
    """The client id holding ``topic_filter`` (that client's, if given) once it is subscribed."""

    def holder(s: BrokerState) -> str | None:
        for entry in s.subscriptions():
            if (client_id is None or entry.client_id == client_id) and any(
                t == topic_filter for t, _ in entry.subscriptions
            ):
                return entry.client_id
        return None

    try:
        await wait_until(state, lambda s: holder(s) is not None, timeout)
    except TimeoutError:
        seen = {e.client_id: [t for t, _ in e.subscriptions] for e in state.subscriptions()}
        who = f" by {client_id!r}" if client_id is not None else ""
        raise TimeoutError(
            f"no subscription to {topic_filter!r}{who} within {timeout}s; subscriptions: {seen}"
        ) from None
    found = holder(state)
    assert found is not None
    return found
