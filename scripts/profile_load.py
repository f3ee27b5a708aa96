"""Profile the ``edgemq`` command under one of the benchmark's loads (cProfile, its own process).

    .venv/bin/python scripts/profile_load.py churn            # connect, subscribe, disconnect
    .venv/bin/python scripts/profile_load.py connections      # connects from 4 processes
    .venv/bin/python scripts/profile_load.py churn --sort cumtime --lines 60

The broker runs as users run it (``python -m broker``, default log level) under
``python -m cProfile``; the load comes from this process, as in scripts/bench.py. cProfile
slows Python code by a factor of about 2: read the shares, not the absolute figures.
"""

from __future__ import annotations

import argparse
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from bench_flows import Running, churn, connections, free_port


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # a process starting: nothing to wait on but its port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["churn", "connections"])
    parser.add_argument("--count", type=int, default=2000, help="sessions or connections (default %(default)s)")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default %(default)s)")
    parser.add_argument("--lines", type=int, default=40, help="functions shown (default %(default)s)")
    args = parser.parse_args(argv)
    port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "edgemq.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "broker"]
        command += ["--mqtt-port", str(port), "--http-port", str(http_port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            _wait_listening(port)
            running = Running("edgemq", ("127.0.0.1", port), http_port, psutil.Process(process.pid))
            result: dict[str, Any] = (
                churn(running, 10_000, args.count) if args.scenario == "churn" else connections(running, args.count)
            )
            print(result)
        finally:
            process.send_signal(signal.SIGINT)  # the command stops in order; cProfile then writes
            process.wait(60)
        pstats.Stats(str(profile)).sort_stats(args.sort).print_stats(args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
