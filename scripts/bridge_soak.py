#!/usr/bin/env python3
"""The long version of tests/integration/test_bridge_faults.py's kill -9 during a drain: many rounds.

Each round starts ``edgemq start --conf FILE`` on a fresh store (sync always) with a bridge to a
real mosquitto behind a proxy that refuses it, queues numbered QoS 1 messages, lets the link pass,
kills the process with SIGKILL at a random number of messages arrived upstream, restarts it on the
same store and checks that every message arrives upstream, first arrivals in publish order
(repeats after the restart are counted, as QoS 1 allows).

  scripts/bridge_soak.py --rounds 20 --messages 20000 --seed 7

Prints one line per round (with the drain pace after the restart) and a summary; exit code 1 if
any round lost a message, reordered one or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests package

from tests.integration.bridge_runs import kill_while_draining


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="kill rounds (default 10)")
    parser.add_argument("--messages", type=int, default=10000, help="messages queued per round (default 10000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    args = parser.parse_args()
    if not 2 <= args.messages <= 65000:
        parser.error("--messages must be 2..65000 (message numbers are packet ids)")
    return args


async def soak(args: argparse.Namespace) -> int:
    """Run the rounds; the number of rounds that lost, reordered or failed."""
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    rng = random.Random(seed)  # noqa: S311 - reproducible kill points, not secrets
    print(f"seed {seed}, {args.rounds} rounds of {args.messages} messages")
    failed = repeats = 0
    for index in range(1, args.rounds + 1):
        kill_after = rng.randint(1, args.messages - 1)
        with tempfile.TemporaryDirectory(prefix="edgemq-bridge-soak-") as directory:
            try:
                run = await kill_while_draining(Path(directory), args.messages, kill_after)
            except (AssertionError, TimeoutError, OSError) as exc:
                print(f"round {index}: kill after {kill_after}: ERROR {exc!r}")
                failed += 1
                continue
        verdict = run.verdict
        broken = bool(verdict.missing or verdict.out_of_order or verdict.unknown)
        repeats += len(verdict.duplicates)
        outcome = f"LOST {verdict.missing[:20]} out of order {verdict.out_of_order}" if broken else "ok"
        print(
            f"round {index}: kill after {kill_after} ({run.before_kill} arrived): "
            f"{len(verdict.duplicates)} repeated, {run.rate:.0f} msg/s after the restart: {outcome}"
        )
        failed += broken
    print(f"summary: {args.rounds} rounds, {failed} failed, {repeats} repeats in all (seed {seed})")
    return failed


def main() -> int:
    return 1 if asyncio.run(soak(parse_args())) else 0


if __name__ == "__main__":
    sys.exit(main())
