"""The MQTT 5 scenarios of scripts/bench.py (issue 16): fan-in and fan-out with every client on
MQTT 5.0 (no properties) beside the same flow with MQTT 3.1.1 clients, each on its own edgemq
process, alternating; the target is at least 0.9x the 3.1.1 rate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from bench_flows import Running, broker_process, flow
from bench_persistence import compare_variants

VARIANTS = ("mqtt311", "mqtt5")


@contextlib.contextmanager
def edgemq(_variant: str) -> Iterator[Running]:
    """A fresh edgemq process (the variants differ in their clients only)."""
    with broker_process("edgemq") as running:
        yield running


def mqtt5_flow(
    scenario: str, repeat: int, publishers: int, per_publisher: int, subscribers: int
) -> list[dict[str, Any]]:
    """``flow`` with 3.1.1 clients (the baseline) and with MQTT 5 clients."""

    def clients(protocol: int) -> Callable[[Running], dict[str, Any]]:
        return lambda running: flow(running, publishers, per_publisher, subscribers, protocol=protocol)

    measures = {"mqtt311": clients(4), "mqtt5": clients(5)}
    return compare_variants(scenario, VARIANTS, repeat, measures["mqtt311"], launch=edgemq, measures=measures)


def fanin_mqtt5(repeat: int, per_publisher: int) -> list[dict[str, Any]]:
    """4 publishers -> 1 subscriber, QoS 0: MQTT 5 clients vs 3.1.1 clients."""
    return mqtt5_flow("fanin_mqtt5", repeat, 4, per_publisher, 1)


def fanout_mqtt5(repeat: int, messages: int) -> list[dict[str, Any]]:
    """1 publisher -> 50 subscribers, QoS 0: MQTT 5 clients vs 3.1.1 clients."""
    return mqtt5_flow("fanout_mqtt5", repeat, 1, messages, 50)
