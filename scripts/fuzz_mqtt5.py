#!/usr/bin/env python3
"""Fuzz edgemq's MQTT 5 protocol level at length: the live fuzz of tests/integration/test_mqtt5_fuzz.py
(tests/mqtt5_fuzz.py) for as long as asked, against an edgemq broker running in this process.

Each case is a raw TCP client that sends a valid MQTT 5 CONNECT (or a mutated one), then packets of
one family: bad properties, cut short, oversize, bad topic aliases, mutated, garbage, protocol
errors, valid ones. After each case a paho-mqtt MQTTv5 client must complete a publish/subscribe
round trip, and the broker must log no ERROR and no traceback.

  .venv/bin/python scripts/fuzz_mqtt5.py                          # 60 seconds
  .venv/bin/python scripts/fuzz_mqtt5.py --seconds 1800 --seed 7 --family aliases

Prints how each family's cases ended and every ERROR or traceback with the case that caused it
(its bytes in hex, to replay). Stops at the first case after which the broker does not answer or
does not route. Exit code 1 if anything was logged loudly or a round trip failed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests package

from tests.helpers import ephemeral_settings, running_broker
from tests.mqtt5_fuzz import FAMILIES, FUZZ_MQTT, draw_case, fuzz_round, loud

SHOWN = 10  # loud cases printed in full


class Records(logging.Handler):
    """Keeps the log records of the current case (the broker's INFO lines are not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default=None, help="only this family (default: all)")
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


async def fuzz(args: argparse.Namespace) -> int:
    """Run cases until the time is up; the number of cases that broke a promise."""
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    rng = random.Random(seed)  # noqa: S311 - reproducible cases, not secrets
    print(f"seed {seed}, {args.seconds:g} s, family {args.family or 'all'}, broker mqtt settings {FUZZ_MQTT}")
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    root.setLevel(logging.INFO)
    logging.getLogger("edgemq.mqtt").setLevel(logging.DEBUG)  # where an unexpected exception of a read loop shows
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    failed = number = 0
    started = time.perf_counter()
    try:
        async with running_broker(ephemeral_settings(mqtt=FUZZ_MQTT)) as broker:
            while time.perf_counter() - started < args.seconds:
                case = draw_case(rng, number, args.family)
                number += 1
                try:
                    outcomes[case.family, await fuzz_round(broker, case, number)] += 1
                except (AssertionError, TimeoutError, OSError) as exc:
                    print(f"case {number}: the broker failed: {exc!r}\n  {case.describe()}")
                    failed += 1
                    break
                found = loud(records.records)
                records.records.clear()
                if found:
                    failed += 1
                    if failed <= SHOWN:
                        print(f"case {number}: logged loudly: {found}\n  {case.describe()}")
    finally:
        root.removeHandler(records)
    elapsed = time.perf_counter() - started
    for (family, outcome), count in sorted(outcomes.items()):
        print(f"  {family:16} {outcome:40} {count}")
    print(f"summary: {number} cases in {elapsed:.0f} s, {failed} failed (seed {seed})")
    return failed


def main() -> int:
    return 1 if asyncio.run(fuzz(parse_args())) else 0


if __name__ == "__main__":
    raise SystemExit(main())
