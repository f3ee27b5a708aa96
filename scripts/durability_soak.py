#!/usr/bin/env python3
"""The long version of tests/integration/test_crash_durability.py: many kill rounds on store files.

Each round starts ``edgemq start --conf FILE`` on a fresh store, has a persistent subscriber go
offline, publishes numbered QoS 1/2 messages (every seventh retained) pipelined, stops the broker
at a random number of acknowledgements (SIGKILL, or SIGTERM with --sigterm-share), restarts it on
the same file and checks that every acknowledged message comes back (QoS 2 exactly once, in
publish order) with session present 1 and the retained messages.

  scripts/durability_soak.py --rounds 200 --max-acks 3000 --sync always --seed 7

Prints one line per round and a summary; exit code 1 if any round lost or duplicated anything.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests package

from tests.integration.durability_runs import crash_round, write_conf


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50, help="kill rounds (default 50)")
    parser.add_argument("--max-acks", type=int, default=2000, help="largest ack count to stop at (default 2000)")
    parser.add_argument("--sync", choices=["always", "batched", "off"], default="always", help="persistence.sync")
    parser.add_argument("--sigterm-share", type=float, default=0.1, help="share of rounds stopped with SIGTERM")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    args = parser.parse_args()
    if not 1 <= args.max_acks <= 65000:
        parser.error("--max-acks must be 1..65000 (message numbers are packet ids)")
    return args


async def soak(args: argparse.Namespace) -> int:
    """Run the rounds; the number of rounds with a broken promise."""
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    rng = random.Random(seed)  # noqa: S311 - reproducible stop points, not secrets
    print(f"seed {seed}, {args.rounds} rounds, sync {args.sync}, stop at 1..{args.max_acks} acknowledgements")
    failed = acked = sent = 0
    started = time.perf_counter()
    for index in range(1, args.rounds + 1):
        stop_after = rng.choice([1, 2, rng.randint(1, args.max_acks), rng.randint(1, args.max_acks)])
        sig = signal.SIGTERM if rng.random() < args.sigterm_share else signal.SIGKILL
        with tempfile.TemporaryDirectory(prefix="edgemq-soak-") as directory:
            conf = write_conf(Path(directory), Path(directory) / "edgemq.db", sync=args.sync)
            try:
                burst, problems = await crash_round(conf, stop_after, sig)
            except (AssertionError, TimeoutError, OSError) as exc:
                print(f"round {index}: {sig.name} at {stop_after}: ERROR {exc!r}")
                failed += 1
                continue
        acked += len(burst.acked)
        sent += len(burst.sent)
        verdict = "ok" if not problems else "LOST: " + "; ".join(problem[:300] for problem in problems)
        counts = f"{len(burst.acked)} acked / {len(burst.sent)} sent"
        print(f"round {index}: {sig.name} at {stop_after} acks: {counts}: {verdict}")
        failed += bool(problems)
    elapsed = time.perf_counter() - started
    print(
        f"summary: {args.rounds} rounds in {elapsed:.0f} s, {failed} failed; "
        f"{acked} messages acknowledged of {sent} sent (seed {seed})"
    )
    return failed


def main() -> int:
    return 1 if asyncio.run(soak(parse_args())) else 0


if __name__ == "__main__":
    sys.exit(main())
