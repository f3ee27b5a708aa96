"""Faults, the registry: what it accepts, what it matches, and when a fault clears itself."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.amqtt_adapter.held_acks import held_ack
from broker.faults import DelayLine, Faults, HeldCopy
from tests.helpers import WAIT

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("enable", "message"),
    [
        (lambda f: f.refuse_connects(0), "n must be a whole number >= 1"),
        (lambda f: f.refuse_connects(1, code=0), "code must be a CONNACK refusal"),
        (lambda f: f.drop_deliveries(2, topic_filter=""), "topic_filter must not be empty"),
        (lambda f: f.delay_deliveries((0.5, 0.1)), "seconds must be >= 0"),
        (lambda f: f.withhold_acks("app", seconds=-1), "seconds must be >= 0"),
    ],
)
async def test_bad_arguments_are_refused_with_a_clear_error(enable: object, message: str) -> None:
    """A fault asked for with a bad argument raises ValueError saying which, and enables nothing."""
    faults = Faults()
    with pytest.raises(ValueError, match=message):
        enable(faults)  # type: ignore[operator]
    assert not faults.active


async def test_active_is_set_while_any_fault_is_in_force() -> None:
    """``active`` (the one check the MQTT side makes) is set by the first fault, cleared by the last undo."""
    faults = Faults()
    first, second = faults.drop_deliveries(), faults.withhold_acks("app")
    assert faults.active
    first.undo()
    assert faults.active
    second.undo()
    second.undo()  # a second undo does nothing
    assert not faults.active


async def test_a_counted_fault_clears_itself_after_its_last_use() -> None:
    """drop_deliveries(2) matches two copies on its filter, then is gone."""
    faults = Faults()
    scope = faults.drop_deliveries(2, topic_filter="a/+")
    assert faults.delivery("app", "b/1", 0) is None
    for _ in range(2):
        verdict = faults.delivery("app", "a/1", 0)
        assert verdict is not None
        verdict.applied()
    assert not scope.is_active
    assert faults.delivery("app", "a/1", 0) is None


async def test_duplicates_match_only_qos_1_copies_of_their_client() -> None:
    """duplicate_deliveries ignores QoS 0 and 2 copies and copies for other clients."""
    faults = Faults()
    faults.duplicate_deliveries(client_id="app")
    assert [faults.delivery(c, "t", q) is not None for c, q in [("app", 0), ("app", 2), ("x", 1), ("app", 1)]] == [
        False,
        False,
        False,
        True,
    ]


async def test_random_delays_fall_in_their_range() -> None:
    """A delay range gives each copy a delay within it."""
    faults = Faults()
    faults.delay_deliveries((0.1, 0.2))
    verdict = faults.delivery("app", "t", 0)
    assert verdict is not None
    assert all(0.1 <= verdict.delay() <= 0.2 for _ in range(100))


def test_connection_faults_need_a_started_broker() -> None:
    """black_hole before the broker started says so instead of failing later."""
    with pytest.raises(RuntimeError, match="not running"):
        Faults().black_hole("app")


async def _sent(name: str, sent: list[str]) -> None:
    sent.append(name)


def _start(line: DelayLine, name: str, sent: list[str], released: asyncio.Future[None]) -> asyncio.Future[Any]:
    held = line.hold((name, b"", 1, None), 0.0, released)
    task = asyncio.ensure_future(held.run(_sent(name, sent)))
    held.attach(task)
    return task


async def test_a_copy_cancelled_before_it_ran_lets_the_next_one_go() -> None:
    """A held copy whose delivery is cancelled before its first step leaves the line: the one behind it goes."""
    released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    line = DelayLine(lambda _: True, set())
    sent: list[str] = []
    first = _start(line, "first", sent, released)
    first.cancel()  # as an evicted QoS 0 copy
    second = _start(line, "second", sent, released)
    released.set_result(None)
    await asyncio.wait_for(second, WAIT)
    assert (sent, line.waiting) == (["second"], [])


async def test_closing_a_line_hands_its_waiting_copies_over_in_order() -> None:
    """close() stops every waiting copy, hands each to ``keep`` in order and returns how many it refused."""
    released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    kept: list[str] = []

    def keep(copy: HeldCopy) -> bool:
        kept.append(copy.topic)
        return copy.topic != "b"

    lines: set[DelayLine] = set()
    line = DelayLine(keep, lines)
    sent: list[str] = []
    tasks = [_start(line, name, sent, released) for name in "abc"]
    assert lines == {line}
    assert line.close() == 1
    await asyncio.wait(tasks, timeout=WAIT)
    assert (kept, sent, lines) == (["a", "b", "c"], [], set())
    assert all(task.cancelled() for task in tasks)


@pytest.mark.parametrize("committing", [False, True])
async def test_cancelling_a_held_acknowledgement_leaves_what_it_waits_for(committing: bool) -> None:
    """A task waiting for a withheld acknowledgement is cancelled: the fault's release and the
    commit, which other acknowledgements share, are not."""
    faults = Faults()
    scope = faults.withhold_acks("app")
    released = faults.ack_hold("app")
    commit: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if committing else None
    held = held_ack(faults, "app", commit)
    assert held is not None
    waiting = asyncio.ensure_future(_await(held))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.wait((waiting,), timeout=WAIT)
    assert released is not None
    assert not released.cancelled()
    assert commit is None or not commit.cancelled()
    scope.undo()
    assert released.done()


async def _await(future: asyncio.Future[None]) -> None:
    await future
