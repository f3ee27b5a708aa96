"""amqtt broker plugins written the way users write them, loaded by the tests through the
``plugins`` section (``tests.plugin_examples.<Class>``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

from amqtt.broker import BrokerContext
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

__all__ = ["FailingEventPlugin", "HangingAuthPlugin", "RecordingPlugin", "RefusingAuthPlugin", "TopicBlockPlugin"]

EVENTS = (
    "broker_pre_start",
    "broker_post_start",
    "broker_pre_shutdown",
    "broker_post_shutdown",
    "broker_client_connected",
    "broker_client_disconnected",
    "broker_client_subscribed",
    "broker_client_unsubscribed",
    "broker_message_received",
    "broker_message_broadcast",
    "broker_retained_message",
)


class RecordingPlugin(BasePlugin[BrokerContext]):
    """Records every broker event with its arguments, in the order they run; found by ``key``."""

    instances: ClassVar[dict[str, RecordingPlugin]] = {}

    @dataclass
    class Config:
        key: str = "default"

    def __init__(self, context: BrokerContext) -> None:
        super().__init__(context)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()
        RecordingPlugin.instances[self.config.key] = self

    def names(self) -> list[str]:
        """The names of the recorded events, in order."""
        return [name for name, _ in self.events]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``name`` was recorded ``count`` times."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.names().count(name) >= count)

    async def _record(self, name: str, **kwargs: Any) -> None:
        self.events.append((name, kwargs))
        async with self._changed:
            self._changed.notify_all()

    async def on_broker_pre_start(self) -> None:
        await self._record("broker_pre_start")

    async def on_broker_post_start(self) -> None:
        await self._record("broker_post_start")

    async def on_broker_pre_shutdown(self) -> None:
        await self._record("broker_pre_shutdown")

    async def on_broker_post_shutdown(self) -> None:
        await self._record("broker_post_shutdown")

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        await self._record("broker_client_connected", client_id=client_id, username=client_session.username)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        await self._record("broker_client_disconnected", client_id=client_id)

    async def on_broker_client_subscribed(self, *, client_id: str, topic: str, qos: int) -> None:
        await self._record("broker_client_subscribed", client_id=client_id, topic=topic, qos=qos)

    async def on_broker_client_unsubscribed(self, *, client_id: str, topic: str) -> None:
        await self._record("broker_client_unsubscribed", client_id=client_id, topic=topic)

    async def on_broker_message_received(self, *, client_id: str | None, message: Any) -> None:
        await self._record("broker_message_received", client_id=client_id, topic=message.topic, data=message.data)

    async def on_broker_message_broadcast(self, *, client_id: str | None, message: Any) -> None:
        await self._record("broker_message_broadcast", client_id=client_id, topic=message.topic, data=message.data)

    async def on_broker_retained_message(self, *, client_id: str | None, retained_message: Any) -> None:
        await self._record(
            "broker_retained_message", client_id=client_id, topic=retained_message.topic, data=retained_message.data
        )


class FailingEventPlugin(BasePlugin[BrokerContext]):
    """Raises on every message it hears about."""

    async def on_broker_message_received(self, *, client_id: str | None, message: Any) -> None:
        raise RuntimeError(f"plugin bug on {message.topic}")


class RefusingAuthPlugin(BaseAuthPlugin):
    """Refuses the user names in ``refuse``, allows those in ``allow``, abstains on the others;
    ``fail`` names users for whom it raises."""

    @dataclass
    class Config:
        refuse: list[str] = field(default_factory=list)
        allow: list[str] = field(default_factory=list)
        fail: list[str] = field(default_factory=list)

    async def authenticate(self, *, session: Session) -> bool | None:
        if session.username in self.config.fail:
            raise ConnectionError("user directory unreachable")
        if session.username in self.config.refuse:
            return False
        return True if session.username in self.config.allow else None


class HangingAuthPlugin(BaseAuthPlugin):
    """Never answers (an auth server that hangs)."""

    async def authenticate(self, *, session: Session) -> bool | None:
        await asyncio.Event().wait()
        return True


class TopicBlockPlugin(BaseTopicPlugin):
    """Refuses topics under ``blocked/`` for every action; abstains on the others."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        return False if topic is not None and topic.startswith("blocked/") else None
