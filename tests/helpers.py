"""Test helpers: brokers on ephemeral ports, real clients, waits with time limits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiomqtt
import httpx

from broker import BrokerSettings, BrokerState, EdgeBroker
from broker.clock import Clock
from broker.testing.helpers import wait_until

WAIT = 5.0  # seconds any single wait in a test may take


def ephemeral_settings(**sections: Any) -> BrokerSettings:
    """Settings with MQTT and HTTP on loopback port 0, plus ``section={key: value}`` options."""
    data: dict[str, Any] = BrokerSettings.ephemeral().model_dump()
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return BrokerSettings.model_validate(data)


def _is_test_runner(task: asyncio.Task[Any]) -> bool:
    # anyio's pytest plugin runs each fixture step in a task of its own
    return getattr(task.get_coro(), "__qualname__", "").startswith("TestRunner.")


@contextlib.asynccontextmanager
async def running_broker(
    settings: BrokerSettings | None = None,
    state: BrokerState | None = None,
    history: int = 0,
    clock: Clock | None = None,
) -> AsyncIterator[EdgeBroker]:
    """A started broker, stopped afterwards; fails if it leaves tasks behind."""
    before = asyncio.all_tasks()
    async with EdgeBroker(settings or ephemeral_settings(), state=state, history=history, clock=clock) as broker:
        yield broker
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and not _is_test_runner(t)]
    if leftover:
        await asyncio.wait(leftover, timeout=1.0)  # amqtt's own event tasks finish on their next step
    still_running = [t for t in leftover if not t.done()]
    assert still_running == [], still_running


async def v1(api: httpx.AsyncClient, req: int, seq: int = 1) -> Any:
    """The ``data`` of a successful v1 request."""
    response = await api.post("/v1", json={"req": req, "seq": seq})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0
    assert body["seq"] == seq
    assert body["rep"] == req
    return body["data"]


def mqtt_client(broker: EdgeBroker, client_id: str = "", **options: Any) -> aiomqtt.Client:
    """An aiomqtt client for ``broker`` (MQTT 3.1.1)."""
    host, port = broker.mqtt_address
    return aiomqtt.Client(host, port, identifier=client_id, **options)


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    """The next message the client receives, within the test wait limit."""
    async with asyncio.timeout(WAIT):
        return await anext(client.messages)


async def wait_state(broker: EdgeBroker, predicate: Callable[[BrokerState], bool]) -> None:
    """Wait until the broker's shared state satisfies ``predicate``."""
    await wait_until(broker.state, predicate, WAIT)


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port that another socket listens on until the block ends."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])
