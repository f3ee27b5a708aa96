#!/usr/bin/env python3
"""edgemq benchmarks. Every figure is printed beside a baseline measured in the same run.

Traffic scenarios run each broker in its own process and alternate them (A/B, B/A, ...),
reporting medians: edgemq against plain amqtt 0.12.1 (anonymous auth plugin only), and
against mosquitto with --with-mosquitto. The load comes from separate processes sending
pre-encoded packets over raw sockets (scripts/bench_load.py); every message carries a
sequence number, so lost, duplicated and out-of-order messages are counted.

  ceiling       the generator's own rates (publishes, connects) against a sink that only answers CONNECT
  fanin         4 publishers -> 1 subscriber, QoS 0, 64-byte payloads
  fanout        1 publisher -> 50 subscribers, QoS 0
  qos1          1 publisher -> 1 subscriber, QoS 1 with acknowledgements (0 lost allowed)
  latency       publish -> deliver latency at a fixed 1 000 msg/s
  connections   2 000 idle clients from 4 processes at once: connects per second, RSS per client
  subscriptions 10, 1 000 and 10 000 subscriptions (plain, + and #), one matching subscriber
  churn         300 clean sessions that connect, subscribe and disconnect beside 10 000 subscriptions
  admin         v1 req 2 latency idle and while 4 publishers saturate edgemq
  startstop     start + stop of an embedded broker (in-loop and run_in_thread) vs plain amqtt
  listing       v1 req 5 and GET /api/v4/clients with 10 000 connected clients vs GET /healthz
  batch         MQTT round trips while the admin API serves a 1 MB publish_batch (27 000 items)
  dashboards    fanin with 10 open dashboards polling the admin API (scripts/bench_dashboard.py)
                vs fanin alone, both on edgemq: the dashboards' cost (issue target: at most 5 %)

Persistence (scripts/bench_persistence.py): edgemq with its store against edgemq without, in
the same run, each process with a fresh store file; the figures of the first variant are the baseline.
  qos1_persistent    qos1 to a subscriber with clean session 0: memory vs sync always, batched, off
  fanin_persistent   fanin to a clean session 0 subscriber: memory vs always
  fanout_persistent  fanout to 50 clean session 0 subscribers: memory vs always
  startup_store      seconds to ready with 100 000 retained messages and 10 000 persistent sessions
                     (100 of them with 10 queued messages) in the store vs no store

Bridges (scripts/bench_bridges.py): edgemq with a bridge to an upstream mosquitto (issue 15).
  bridge_forward     1 publisher -> edgemq -> bridge -> mosquitto -> subscriber, QoS 0 and QoS 1,
                     beside the same flow directly on mosquitto
  bridge_drain       100 000 QoS 1 messages queued while the upstream is down, then sent to it:
                     drain rate and time (issue target 20 000 msg/s)

Plugins (scripts/bench_plugins.py): edgemq with amqtt plugins against edgemq without (issue 17).
  fanin_plugins      fanin with no plugin vs amqtt's EventLoggerPlugin vs one on_broker_message_received hook

MQTT 5 (scripts/bench_mqtt5.py): the same edgemq with MQTT 5 clients against MQTT 3.1.1 ones (issue 16).
  fanin_mqtt5        fanin with MQTT 5 clients (no properties) vs 3.1.1 clients (target >= 0.9x)
  fanout_mqtt5       fanout with MQTT 5 clients vs 3.1.1 clients

Output: a table, or JSON lines with --json. --smoke runs everything with tiny counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench_batch import batch_latency
from bench_bridges import bridge_drain, bridge_forward
from bench_dashboard import dashboards_fanin
from bench_flows import (
    Running,
    admin_latency,
    broker_process,
    churn,
    connections,
    flow,
    generator_ceiling,
    subscription_scaling,
)
from bench_mqtt5 import fanin_mqtt5, fanout_mqtt5
from bench_persistence import (
    FULL_STORE,
    SMOKE_STORE,
    fanin_persistent,
    fanout_persistent,
    qos1_persistent,
    startup_store,
)
from bench_plugins import fanin_plugins

from broker import BrokerSettings, EdgeBroker

EPHEMERAL = BrokerSettings.ephemeral()
PROGRAMS = Path(__file__).resolve().parent / "bench_programs"  # run in processes of their own


@dataclass
class Result:
    """One figure of one scenario beside its baseline from the same run."""

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

    def row(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "metric": f"{self.subject} median_ms", "value": self.median_ms,
                "baseline": self.baseline_median_ms, "ratio": round(self.ratio, 3), "p90_ms": self.p90_ms,
                "runs": self.runs}  # fmt: skip


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


def _python(program: str, *args: object, stdin: bool = False) -> subprocess.Popen[str]:
    """Run one of scripts/bench_programs/ in its own process."""
    return subprocess.Popen(  # noqa: S603 - our own program and interpreter
        [sys.executable, str(PROGRAMS / program), *map(str, args)],
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
        holder = _python("hold_connections.py", broker.mqtt_host, broker.mqtt_port, clients, stdin=True)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "connected"
            broker.wait_for_client(f"bench-{clients - 1:05d}", timeout=60)
            timer = _python("time_requests.py", broker.http_address[1], *broker.admin_auth, runs)
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


def ab(scenario: str, args: argparse.Namespace, measure: Callable[[Running], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``measure`` on each broker, alternating their order; medians beside amqtt's as ratios."""
    brokers = ["amqtt", "edgemq"] + (["mosquitto"] if args.with_mosquitto and shutil.which("mosquitto") else [])
    values: dict[str, list[dict[str, Any]]] = {name: [] for name in brokers}
    for repeat in range(args.repeat):
        for name in brokers if repeat % 2 == 0 else reversed(brokers):
            with broker_process(name) as running:
                values[name].append(measure(running))
    rows = []
    for metric in values["edgemq"][0]:
        median = {name: statistics.median(v[metric] for v in values[name]) for name in brokers}
        row = {
            "scenario": scenario,
            "metric": metric,
            "value": median["edgemq"],
            "baseline": median["amqtt"],
            "ratio": round(median["edgemq"] / median["amqtt"], 2) if median["amqtt"] else None,
            "runs": args.repeat,
        }
        if "mosquitto" in median:
            row["mosquitto"] = median["mosquitto"]
        rows.append(row)  # fmt: skip
    return rows


def edgemq_only(scenario: str, measure: Callable[[Running], dict[str, Any]]) -> list[dict[str, Any]]:
    with broker_process("edgemq") as running:
        result = measure(running)
    return [{"scenario": scenario, "metric": k, "value": v, "baseline": None, "ratio": None, "runs": 1}
            for k, v in result.items()]  # fmt: skip


def scale(args: argparse.Namespace, full: int) -> int:
    return max(full // 100, 20) if args.smoke else full


SCENARIOS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {
    "ceiling": lambda a: [{"scenario": "ceiling", "metric": k, "value": v, "baseline": None, "ratio": None, "runs": 1}
                          for k, v in generator_ceiling(scale(a, 50_000), scale(a, 4_000)).items()],
    "fanin": lambda a: ab("fanin", a, lambda r: flow(r, 4, scale(a, 25_000), 1)),
    "fanout": lambda a: ab("fanout", a, lambda r: flow(r, 1, scale(a, 2_000), 50)),
    "qos1": lambda a: ab("qos1", a, lambda r: flow(r, 1, scale(a, 10_000), 1, qos=1, idle=10)),
    "latency": lambda a: ab("latency", a, lambda r: flow(r, 1, scale(a, 3_000), 1, rate=1000, latency=True)),
    "connections": lambda a: ab("connections", a, lambda r: connections(r, scale(a, 2_000))),
    "subscriptions": lambda a: [row for n in ((10, 100) if a.smoke else (10, 1_000, 10_000))
                                for row in ab(f"subscriptions {n}", a,
                                              partial(subscription_scaling, filters=n, messages=scale(a, 5_000)))],
    "churn": lambda a: ab(f"churn {scale(a, 10_000)}", a, lambda r: churn(r, scale(a, 10_000), scale(a, 300))),
    "admin": lambda a: edgemq_only("admin", lambda r: admin_latency(r, scale(a, 50_000))),
    "startstop": lambda a: [r.row() for r in asyncio.run(bench_startstop(2 if a.smoke else a.runs))],
    "dashboards": lambda a: dashboards_fanin(a.repeat, scale(a, 100_000)),
    "batch": lambda a: edgemq_only("batch", lambda r: batch_latency(r, scale(a, 27_000), 1 if a.smoke else 5)),
    "listing": lambda a: [r.row() for r in bench_listing(20 if a.smoke else a.clients, 2 if a.smoke else 10)],
    "qos1_persistent": lambda a: qos1_persistent(a.repeat, scale(a, 10_000)),
    "fanin_persistent": lambda a: fanin_persistent(a.repeat, scale(a, 25_000)),
    "fanout_persistent": lambda a: fanout_persistent(a.repeat, scale(a, 2_000)),
    "startup_store": lambda a: startup_store(SMOKE_STORE if a.smoke else FULL_STORE, a.repeat),
    "bridge_forward": lambda a: [*bridge_forward(a.repeat, scale(a, 50_000), 0),
                                 *bridge_forward(a.repeat, scale(a, 20_000), 1)],
    "bridge_drain": lambda a: bridge_drain(a.repeat, 2_000 if a.smoke else 100_000),
    "fanin_plugins": lambda a: fanin_plugins(a.repeat, scale(a, 25_000)),
    "fanin_mqtt5": lambda a: fanin_mqtt5(a.repeat, scale(a, 25_000)),
    "fanout_mqtt5": lambda a: fanout_mqtt5(a.repeat, scale(a, 2_000)),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--runs", type=int, default=30, help="repetitions per subject (default %(default)s)")
    parser.add_argument(
        "--clients", type=int, default=10_000, help="connected clients for listing (default %(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="A/B repetitions of traffic scenarios (default %(default)s)"
    )
    parser.add_argument("--with-mosquitto", action="store_true", help="also measure mosquitto, if installed")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check that every scenario runs")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message=".*psutil.*", category=DeprecationWarning)  # the baseline's $SYS plugin
    if args.smoke:
        args.repeat = 1
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.node()} Python {platform.python_version()}", file=sys.stderr)
    for name in args.scenario or sorted(SCENARIOS):
        for row in SCENARIOS[name](args):
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                extra = f"  mosquitto {row['mosquitto']}" if "mosquitto" in row else ""
                extra += f"  target {row['target']}" if "target" in row else ""
                ratio = f"{row['ratio']}x" if row["ratio"] is not None else "-"
                print(f"{row['scenario']:18} {row['metric']:34} {row['value']!s:>12}  baseline "
                      f"{row['baseline']!s:>12}  ratio {ratio:>8}{extra}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
