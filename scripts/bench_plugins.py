"""The plugin scenario of scripts/bench.py (issue 17): fan-in with and without amqtt plugins.

Each variant is an ``edgemq`` process started with a configuration file whose ``plugins``
section it names: ``none`` (the default: no plugin, so no event is built or fired),
``event_logger`` (amqtt's EventLoggerPlugin: it listens to every event, packets included, so
every packet is also made as amqtt's packet object) and ``received`` (one plugin listening to
``on_broker_message_received`` only, the cheapest useful hook). Variants alternate and their
medians are compared with ``none``'s.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_flows import Running, broker_process, flow
from bench_persistence import compare_variants

VARIANTS = {
    "none": "",
    "event_logger": '"amqtt.plugins.logging_amqtt.EventLoggerPlugin" {}',
    "received": '"bench_programs.counting_plugin.ReceivedCounter" {}',
}


@contextlib.contextmanager
def plugins_variant(variant: str) -> Iterator[Running]:
    """An edgemq process with the plugins of ``variant``."""
    with tempfile.TemporaryDirectory(prefix="edgemq-bench-") as tmp:
        conf = Path(tmp) / "edgemq.conf"
        conf.write_text(f"plugins {{\n  {VARIANTS[variant]}\n}}\n")
        scripts = Path(__file__).resolve().parent
        with broker_process("edgemq", args=["--conf", str(conf)], env={"PYTHONPATH": str(scripts)}) as running:
            yield running


def fanin_plugins(repeat: int, per_publisher: int) -> list[dict[str, Any]]:
    """The fanin scenario (QoS 0): no plugin vs amqtt's event logger vs one received hook."""
    return compare_variants("fanin_plugins", tuple(VARIANTS), repeat,
                            lambda r: flow(r, 4, per_publisher, 1), launch=plugins_variant)  # fmt: skip
