#!/usr/bin/env python3
"""edgemq benchmarks. Every figure is printed beside a baseline measured in the same run.

Scenarios:
  startstop   start + stop of an embedded broker (EdgeBroker in the caller's loop, and
              EdgeBroker.run_in_thread as the pytest fixtures use it), against plain
              amqtt 0.12.1 started and shut down in the same loop.
  listing     v1 req 5 and GET /api/v4/clients with N connected clients (default 10 000, held
              by a separate process over raw sockets), against GET /healthz in the same run.

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
import subprocess
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


_HOLD_CONNECTIONS = """
import socket, struct, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def connect_packet(client_id):
    cid = client_id.encode()
    body = b"\\x00\\x04MQTT\\x04\\x02\\x00\\x3c" + struct.pack("!H", len(cid)) + cid
    return b"\\x10" + bytes([len(body)]) + body
held = []
for n in range(count):
    sock = socket.create_connection((host, port))
    sock.sendall(connect_packet(f"bench-{n:05d}"))
    assert sock.recv(4)[:2] == b"\\x20\\x02"
    held.append(sock)
print("connected", flush=True)
sys.stdin.read()
"""


_TIME_REQUESTS = """
import base64, http.client, json, sys, time
port, user, password, runs = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
requests = {
    "healthz": ("GET", "/healthz", None),
    "v1 req 5": ("POST", "/api/v1", b'{"req":5,"seq":1}'),
    "GET /api/v4/clients": ("GET", "/api/v4/clients", None),
}
samples = {name: [] for name in requests}
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(runs):
    for name, (method, path, body) in requests.items():
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=auth)
        response = connection.getresponse()
        data = response.read()
        samples[name].append(time.perf_counter() - started)
        assert response.status == 200, (name, response.status)
samples["clients listed"] = len(json.loads(data)["data"])
print(json.dumps(samples))
"""


def _python(script: str, *args: object, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own script and interpreter
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        text=True,
    )


def bench_listing(clients: int, runs: int) -> list[Result]:
    """Time full client listings through the admin API while ``clients`` connections are held.

    The connections and the timed HTTP client are separate processes, so the broker's thread
    has this process to itself.
    """
    with EdgeBroker.run_in_thread(EPHEMERAL, history=0) as broker:
        holder = _python(_HOLD_CONNECTIONS, broker.mqtt_host, broker.mqtt_port, clients, stdin=True)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "connected"
            broker.wait_for_client(f"bench-{clients - 1:05d}", timeout=60)
            timer = _python(_TIME_REQUESTS, broker.http_address[1], *broker.admin_auth, runs)
            output, _ = timer.communicate(timeout=600)
            samples = json.loads(output)
            assert samples.pop("clients listed") == clients
        finally:
            if holder.stdin is not None:
                holder.stdin.close()
            holder.wait(timeout=30)
    baseline, _ = _summary(samples["healthz"])
    results = []
    for name in ("v1 req 5", "GET /api/v4/clients"):
        median, p90 = _summary(samples[name])
        results.append(Result(f"listing {clients}", name, runs, round(median, 2), round(p90, 2), round(baseline, 2)))
    return results


SCENARIOS: dict[str, Callable[[argparse.Namespace], list[Result]]] = {
    "startstop": lambda args: asyncio.run(bench_startstop(args.runs)),
    "listing": lambda args: bench_listing(args.clients, max(args.runs // 3, 2)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--runs", type=int, default=30, help="repetitions per subject (default %(default)s)")
    parser.add_argument(
        "--clients", type=int, default=10_000, help="connected clients for listing (default %(default)s)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check that every scenario runs")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message=".*psutil.*", category=DeprecationWarning)  # the baseline's $SYS plugin
    if args.smoke:
        args.runs, args.clients = 2, 20
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} Python {platform.python_version()}", file=sys.stderr)
    for name in args.scenario or sorted(SCENARIOS):
        for result in SCENARIOS[name](args):
            if args.json:
                print(json.dumps({**asdict(result), "ratio": round(result.ratio, 3)}))
            else:
                print(
                    f"{result.scenario:14} {result.subject:26} median {result.median_ms:8.2f} ms"
                    f"  p90 {result.p90_ms:8.2f} ms  baseline {result.baseline_median_ms:8.2f} ms"
                    f"  ratio {result.ratio:6.2f}x  (n={result.runs})"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
