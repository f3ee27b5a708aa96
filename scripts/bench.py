#!/usr/bin/env python3
"""edgemq benchmarks. Every figure is printed beside a baseline measured in the same run.

Scenarios:
  startstop   start + stop of an embedded broker (EdgeBroker in the caller's loop, and
              EdgeBroker.run_in_thread as the pytest fixtures use it), against plain
              amqtt 0.12.1 started and shut down in the same loop.

Output: one JSON object per line on stdout (``--json``), or a table (default).
``--smoke`` runs every scenario with tiny counts, to prove the suite works (tests/bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from broker import BrokerSettings, EdgeBroker

EPHEMERAL = BrokerSettings.ephemeral()


@dataclass
class Result:
    scenario: str
    subject: str
    runs: int
    median_ms: float
    p90_ms: float
    baseline_median_ms: float

    @property
    def ratio(self) -> float:
        """Subject time over baseline time (lower is faster)."""
        return self.median_ms / self.baseline_median_ms


def _summary(samples: list[float]) -> tuple[float, float]:
    p90 = statistics.quantiles(samples, n=10, method="inclusive")[-1]
    return statistics.median(samples) * 1000, p90 * 1000


async def _time(action: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def _edgemq_async() -> None:
    async with EdgeBroker(EPHEMERAL):
        pass


async def _edgemq_thread() -> None:
    def run() -> None:
        with EdgeBroker.run_in_thread(EPHEMERAL):
            pass

    await asyncio.to_thread(run)


async def _plain_amqtt() -> None:
    from amqtt.broker import Broker  # the baseline: amqtt as installed, default plugins

    broker = Broker({"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}}})
    await broker.start()
    await broker.shutdown()


async def bench_startstop(runs: int) -> list[Result]:
    """Alternate baseline and subjects so that machine noise hits all of them alike."""
    subjects = {"EdgeBroker": _edgemq_async, "EdgeBroker.run_in_thread": _edgemq_thread}
    samples: dict[str, list[float]] = {name: [] for name in [*subjects, "amqtt"]}
    for _ in range(runs):
        samples["amqtt"].append(await _time(_plain_amqtt))
        for name, action in subjects.items():
            samples[name].append(await _time(action))
    baseline, _ = _summary(samples["amqtt"])
    results = []
    for name in subjects:
        median, p90 = _summary(samples[name])
        results.append(Result("startstop", name, runs, round(median, 2), round(p90, 2), round(baseline, 2)))
    return results


SCENARIOS = {"startstop": bench_startstop}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--runs", type=int, default=30, help="repetitions per subject (default %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check that every scenario runs")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message=".*psutil.*", category=DeprecationWarning)  # the baseline's $SYS plugin
    runs = 2 if args.smoke else args.runs
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} Python {platform.python_version()}", file=sys.stderr)
    for name in args.scenario or sorted(SCENARIOS):
        for result in asyncio.run(SCENARIOS[name](runs)):
            if args.json:
                print(json.dumps({**asdict(result), "ratio": round(result.ratio, 3)}))
            else:
                print(
                    f"{result.scenario:10} {result.subject:26} median {result.median_ms:8.2f} ms"
                    f"  p90 {result.p90_ms:8.2f} ms  amqtt {result.baseline_median_ms:8.2f} ms"
                    f"  ratio {result.ratio:5.2f}x  (n={result.runs})"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
