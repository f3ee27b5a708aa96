#!/usr/bin/env python3
"""What one INFO line costs the thread that logs it (the event loop), by how the line is written.

  direct    the edgemq line format written by a FileHandler on the calling thread
  queue     the standard library's QueueHandler (formats the line on the calling thread) and a
            QueueListener thread that writes it
  deferred  broker.log_output.DeferredQueueHandler: the record is queued as it is, the listener
            thread formats and writes it
  command   deferred, with the record fields the line does not print switched off
            (broker.log_output.lean_records): what the edgemq command does

The line is the broker's connect line with the same arguments. Two measures, each the median of
rounds that alternate the setups:
  paced  one line every 200 us (a busy broker's connect rate), the time of the call alone: the
         listener thread has time to drain between lines, as it does when the loop waits on I/O
  burst  lines back to back, wall time per line: the listener competes with the caller for the GIL

Every figure is printed beside direct's, measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path

from broker.log_output import LINE_FORMAT, DeferredQueueHandler, lean_records

SETUPS = ("direct", "queue", "deferred", "command")
CONNECT_LINE = "client connected: client_id=%s username=%s address=%s:%s protocol=%d clean_session=%d keepalive=%d"
CONNECT_ARGS = ("sensor-0042", "alice", "127.0.0.1", 50123, 4, 1, 60)

log = logging.getLogger("edgemq.mqtt")


@contextmanager
def logging_to(setup: str, path: Path) -> Iterator[None]:
    """The root logger writes to ``path`` as ``setup`` says, for the block; everything written at its end."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    listener = None
    front: logging.Handler = handler
    if setup == "direct":
        root.addHandler(front)
    else:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        front = (QueueHandler if setup == "queue" else DeferredQueueHandler)(records)
        root.addHandler(front)
        listener = QueueListener(records, handler)
        listener.start()
    try:
        with ExitStack() as stack:
            if setup == "command":
                stack.enter_context(lean_records())
            yield
    finally:
        root.removeHandler(front)
        if listener is not None:
            listener.stop()
        handler.close()


def paced(lines: int, interval: float) -> float:
    """Median seconds of one log call, one call every ``interval`` seconds."""
    times = []
    clock = time.perf_counter
    for _ in range(lines):
        started = clock()
        log.info(CONNECT_LINE, *CONNECT_ARGS)
        times.append(clock() - started)
        time.sleep(interval)
    return statistics.median(times)


def burst(lines: int) -> float:
    """Wall seconds per log call, calls back to back."""
    started = time.perf_counter()
    for _ in range(lines):
        log.info(CONNECT_LINE, *CONNECT_ARGS)
    return (time.perf_counter() - started) / lines


def measure(name: str, run: Callable[[], float], rounds: int, folder: Path) -> dict[str, float]:
    """Median of ``run`` per setup over ``rounds`` rounds that alternate the setups."""
    samples: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    for round_number in range(rounds):
        order = SETUPS if round_number % 2 == 0 else SETUPS[::-1]
        for setup in order:
            path = folder / f"{name}-{setup}.log"
            with logging_to(setup, path):
                samples[setup].append(run())
            path.unlink()
    return {setup: statistics.median(values) for setup, values in samples.items()}


def main() -> None:
    """Print the paced and burst figures with ratios to direct."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=5000, help="lines per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per setup (default 6)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check that it runs")
    args = parser.parse_args()
    lines, rounds = (50, 2) if args.smoke else (args.lines, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "paced": measure("paced", lambda: paced(lines, 0.0002), rounds, Path(tmp)),
            "burst": measure("burst", lambda: burst(lines * 4), rounds, Path(tmp)),
        }
    print(f"python {sys.version.split()[0]}, {lines} lines x {rounds} rounds; us per INFO line on the calling thread")
    for measure_name, figures in results.items():
        direct = figures["direct"]
        row = "  ".join(f"{setup} {figures[setup] * 1e6:6.2f} ({figures[setup] / direct:.2f}x)" for setup in SETUPS)
        print(f"{measure_name:6} {row}")


if __name__ == "__main__":
    main()
