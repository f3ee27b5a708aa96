"""The bridge scenarios of scripts/bench.py (issue 15): edgemq forwarding to an upstream mosquitto.

The upstream is a mosquitto of our own on a fixed loopback port (so that it can be started after
edgemq), with unlimited in-flight and queued messages per client (``max_inflight_messages 0``,
``max_queued_messages 0``): its defaults (20 in flight, 1000 queued) would throttle or drop
what the bridge sends faster than the subscriber takes it. edgemq runs with a configuration
file of one bridge, ``up``, forwarding ``bench/#`` unchanged; persistence is off (the queue is
in memory) and ``max_send_queue_len`` holds every message of the run.

  bridge_forward qos0, qos1   1 publisher -> edgemq -> bridge -> mosquitto -> 1 subscriber, the
                              rate delivered upstream beside the same publisher -> subscriber
                              directly on mosquitto (the baseline), alternating; cpu is the
                              share of the broker the publisher talks to (edgemq or mosquitto)
  bridge_drain                the upstream is down (nothing listens on its port) while the
                              publisher queues QoS 1 messages in edgemq; then mosquitto starts,
                              the subscriber subscribes, the bridge connects and sends its queue:
                              drain rate and time from the first message upstream to the last

The drain's subscriber must be subscribed before the first message reaches mosquitto (mosquitto
drops what nobody subscribes to), and the bridge reconnects at a moment of its backoff's
choosing. So the bridge is paused (admin API, POST /api/v4/bridges/switch/up) while the queue
fills, reconnects while paused, and is resumed once the subscriber is ready: resuming runs the
same loop that a reconnect runs, sending the whole queue within ``max_inflight``.

Run alone to profile the drain: ``python scripts/bench_bridges.py --messages 100000 --profile``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import pstats
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from bench_flows import Running, broker_process, cpu_share, flow
from bench_load import publish_messages, subscribe_and_count

MOSQUITTO = "/usr/sbin/mosquitto"
BRIDGE = "up"
DRAIN_TARGET = 20_000  # msg/s, issue 15
UPSTREAM_CONFIG = [
    "allow_anonymous true",
    "persistence false",
    "user root",  # as root, mosquitto would switch to the user 'mosquitto'
    "max_inflight_messages 0",
    "max_queued_messages 0",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
]
AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:public").decode()}


def upstream_port() -> int:
    """A free loopback port below the kernel's ephemeral range: while the upstream is down, no
    outgoing connection is given its port, so mosquitto can bind it later."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10_000, low), 50):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@contextlib.contextmanager
def upstream(port: int, timeout: float = 20.0) -> Iterator[Running]:
    """mosquitto on 127.0.0.1:``port`` with the configuration above, killed at the end."""
    with tempfile.TemporaryDirectory(prefix="edgemq-bench-upstream-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text("\n".join([f"listener {port} 127.0.0.1", *UPSTREAM_CONFIG]) + "\n")
        process = subprocess.Popen(  # noqa: S603 - the installed mosquitto, our configuration
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + timeout
            while True:  # a benchmark may poll: wait until mosquitto accepts connections
                with contextlib.suppress(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"mosquitto did not start on port {port}")
                time.sleep(0.01)
            yield Running("mosquitto", ("127.0.0.1", port), 0, psutil.Process(process.pid))
        finally:
            process.kill()  # mosquitto 2.0 may lose a SIGTERM that comes just after it started
            process.wait()


def bridge_config(port: int, qos: int, max_queued: int) -> str:
    """edgemq's configuration: bridge ``up`` forwards ``bench/#`` at ``qos`` to ``port``."""
    return f"""
persistence.enable = false
bridges.mqtt.{BRIDGE} {{
    server = "mqtt-tcp://127.0.0.1:{port}"
    forwards = [ {{ local_topic = "bench/#", remote_topic = "", qos = {qos} }} ]
    max_inflight = 256
    max_send_queue_len = {max_queued}
    keepalive = 60s
}}
"""


@contextlib.contextmanager
def bridged_edgemq(port: int, qos: int, max_queued: int, profile: Path | None = None) -> Iterator[tuple[Running, Path]]:
    """An edgemq process whose bridge forwards to ``port`` (cProfile writing ``profile`` if
    given), and the path of its log."""
    with tempfile.TemporaryDirectory(prefix="edgemq-bench-bridge-") as tmp:
        conf, log = Path(tmp) / "edgemq.conf", Path(tmp) / "edgemq.log"
        conf.write_text(bridge_config(port, qos, max_queued))
        python = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
        with broker_process("edgemq", log=log, args=["--conf", str(conf)], python=python, timeout=60) as running:
            yield running, log


def _admin(running: Running, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=30)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=AUTH)
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    if answer.get("code") != 0:
        raise RuntimeError(f"{method} {path}: {answer}")
    return answer


def bridge_state(running: Running) -> dict[str, Any]:
    """The bridge's node of GET /api/v4/bridges/up (state, queued, forwarded, dropped)."""
    node: dict[str, Any] = _admin(running, "GET", f"/api/v4/bridges/{BRIDGE}")["data"]["bridge"]["nodes"][0]
    return node


def wait_bridge(running: Running, state: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the admin API until the bridge is in ``state`` (a reconnect waits for its backoff, at most 15 s)."""
    deadline = time.monotonic() + timeout
    while (node := bridge_state(running))["state"] != state:
        if time.monotonic() > deadline:
            raise RuntimeError(f"bridge not {state} within {timeout} s: {node}")
        time.sleep(0.05)
    return node


def wait_connected(log: Path, timeout: float = 30.0) -> float:
    """Seconds until edgemq logs that the bridge connected (the log, not the admin API, which
    shows a paused bridge as paused whether its link is up or not)."""
    started = time.perf_counter()
    while f"bridge {BRIDGE}: connected to" not in log.read_text():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the bridge did not reconnect within {timeout} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return time.perf_counter() - started


def pause_bridge(running: Running, paused: bool) -> None:
    _admin(running, "POST", f"/api/v4/bridges/switch/{BRIDGE}", {"data": {"bridge_switch": not paused}})


def forward_once(variant: str, messages: int, qos: int) -> dict[str, Any]:
    """One run of the flow: ``direct`` on mosquitto, or ``bridge`` through edgemq to mosquitto."""
    idle = 10.0 if qos else 3.0
    port = upstream_port()
    with upstream(port) as mosquitto:
        if variant == "direct":
            return flow(mosquitto, 1, messages, 1, qos=qos, idle=idle)
        with bridged_edgemq(port, qos, messages + 1000) as (edgemq, log):
            wait_connected(log)
            result = flow(edgemq, 1, messages, 1, qos=qos, idle=idle, subscribe_at=mosquitto.address)
            return {**result, "queue_dropped": bridge_state(edgemq)["dropped"]}


def bridge_forward(repeat: int, messages: int, qos: int) -> list[dict[str, Any]]:
    """``bridge`` against ``direct`` (the baseline), alternating; medians."""
    values: dict[str, list[dict[str, Any]]] = {"direct": [], "bridge": []}
    for round_number in range(repeat):
        for variant in ("direct", "bridge") if round_number % 2 == 0 else ("bridge", "direct"):
            values[variant].append(forward_once(variant, messages, qos))
    rows = []
    for metric in values["bridge"][0]:
        value = statistics.median(v[metric] for v in values["bridge"])
        baseline = statistics.median(v[metric] for v in values["direct"]) if metric in values["direct"][0] else None
        ratio = round(value / baseline, 2) if baseline else None
        rows.append({"scenario": f"bridge_forward qos{qos}", "metric": f"bridge {metric}", "value": value,
                     "baseline": baseline, "ratio": ratio, "runs": repeat})  # fmt: skip
    return rows


def drain_once(messages: int, profile: Path | None = None) -> dict[str, Any]:
    """Queue ``messages`` QoS 1 messages while the upstream is down, then drain them (module docstring)."""
    port = upstream_port()  # nothing listens there yet: the bridge's connects are refused
    context = multiprocessing.get_context("fork")
    with (
        bridged_edgemq(port, 1, messages + 1000, profile) as (edgemq, log),
        ProcessPoolExecutor(1, mp_context=context) as pool,
    ):
        wait_bridge(edgemq, "disconnected")
        pause_bridge(edgemq, True)
        go = threading.Event()
        go.set()
        start, end = publish_messages(edgemq.address, "pub-0", 0, "bench/0", messages, 64, 1, go)
        queued = wait_bridge(edgemq, "paused")["queued"]
        if queued != messages:
            raise RuntimeError(f"the bridge queued {queued} of {messages} messages")
        manager = context.Manager()
        ready = manager.Event()
        with upstream(port) as mosquitto:
            counting = pool.submit(subscribe_and_count, mosquitto.address, ["drain-sub"], [("bench/#", 1)],
                                   messages, 30.0, ready)  # fmt: skip
            if not ready.wait(60):
                raise RuntimeError("the upstream subscriber did not subscribe")
            reconnect_s = wait_connected(log)
            with cpu_share(edgemq) as cpu:
                resumed = time.perf_counter()
                pause_bridge(edgemq, False)
                (seen,) = counting.result(timeout=600)
        manager.shutdown()
        node = bridge_state(edgemq)
    drain_s = seen.last - seen.first
    return {
        "drain_per_s": round(seen.count / max(drain_s, 1e-9)) if seen.count else 0,
        "drain_s": round(drain_s, 3),
        "resume_to_first_ms": round((seen.first - resumed) * 1000, 1),
        "queued_per_s": round(messages / max(end - start, 1e-9)),
        "reconnect_s": round(reconnect_s, 2),
        "lost": messages - seen.count,
        "duplicates": seen.duplicates,
        "out_of_order": seen.out_of_order,
        "queue_dropped": node["dropped"],
        "edgemq_cpu": cpu["cpu"],
    }


def bridge_drain(repeat: int, messages: int) -> list[dict[str, Any]]:
    """``repeat`` drains of ``messages``; medians, the drain rate beside the issue's target."""
    values = [drain_once(messages) for _ in range(repeat)]
    rows = []
    for metric in values[0]:
        row = {
            "scenario": f"bridge_drain {messages}",
            "metric": metric,
            "value": statistics.median(v[metric] for v in values),
            "baseline": None,
            "ratio": None,
            "runs": repeat,
        }
        if metric == "drain_per_s":
            row["target"] = DRAIN_TARGET
        rows.append(row)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="messages to drain (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="run edgemq under cProfile and print its profile")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default %(default)s)")
    parser.add_argument("--lines", type=int, default=40, help="functions shown (default %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "edgemq.prof" if args.profile else None
        print(drain_once(args.messages, profile))
        if profile is not None:
            pstats.Stats(str(profile)).sort_stats(args.sort).print_stats(args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
