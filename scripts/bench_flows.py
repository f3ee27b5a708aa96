"""Broker processes under test and the MQTT traffic scenarios of scripts/bench.py."""

from __future__ import annotations

import base64
import contextlib
import http.client
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from bench_load import hold_clients, open_client, publish_messages, subscribe_and_count

from broker.mqtt.encoding import DISCONNECT, encode_subscribe

PROGRAMS = Path(__file__).resolve().parent / "bench_programs"  # the amqtt baseline and the sink


@dataclass
class Running:
    """A broker process under test."""

    name: str
    address: tuple[str, int]
    http_port: int
    process: psutil.Process
    ready_s: float = 0.0
    """Seconds from starting the process until it accepted connections (both ports for edgemq)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def broker_process(
    name: str,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 20.0,
    args: Sequence[str] = (),
    python: Sequence[str] = (),
) -> Iterator[Running]:
    """Start ``edgemq``, ``amqtt`` (plain 0.12.1, anonymous auth only), ``mosquitto`` or ``sink``.

    ``env`` is added to this process's environment (edgemq's ``EDGEMQ_*`` settings); ``log``
    receives the process's standard error (edgemq's log lines), else it is discarded. edgemq
    only: ``args`` are added to its command line (``--conf FILE``), ``python`` are interpreter
    options before ``-m broker`` (``-m cProfile -o FILE``).
    """
    port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if name == "edgemq":
            # as users run it: the default log level (an INFO line per connect and disconnect)
            command = [sys.executable, *python, "-m", "broker", "--mqtt-port", str(port), "--http-port", str(http_port)]
            command += args
        elif name == "amqtt":
            command = [sys.executable, str(PROGRAMS / "amqtt_broker.py"), str(port)]
        elif name == "sink":
            command = [sys.executable, str(PROGRAMS / "sink.py"), str(port)]
        else:
            conf = os.path.join(tmp, "mosquitto.conf")
            with open(conf, "w") as handle:
                handle.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n")
            command = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf]
        errors = open(log, "wb") if log is not None else None  # noqa: SIM115 - closed below, after the process
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603
            command, stdout=subprocess.DEVNULL, stderr=errors or subprocess.DEVNULL, env={**os.environ, **(env or {})}
        )
        try:
            deadline = time.monotonic() + timeout
            # edgemq opens the admin API after MQTT: ready once both accept
            for ready_port in (port, http_port) if name == "edgemq" else (port,):
                while True:  # a benchmark script may poll: wait until the broker accepts connections
                    with contextlib.suppress(ConnectionRefusedError):
                        socket.create_connection(("127.0.0.1", ready_port)).close()
                        break
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"{name} did not start")
                    time.sleep(0.01)
            ready = time.perf_counter() - started
            yield Running(name, ("127.0.0.1", port), http_port, psutil.Process(process.pid), ready)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if errors is not None:
                errors.close()


@contextlib.contextmanager
def cpu_share(running: Running) -> Iterator[dict[str, float]]:
    """The broker's CPU time over the wall time of the block (1.0 = one core)."""
    result: dict[str, float] = {}
    before, started = running.process.cpu_times(), time.perf_counter()
    yield result
    after = running.process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    result["cpu"] = round(used / max(time.perf_counter() - started, 1e-9), 2)


def flow(
    running: Running,
    publishers: int,
    per_publisher: int,
    subscribers: int,
    size: int = 64,
    qos: int = 0,
    rate: float = 0.0,
    latency: bool = False,
    idle: float = 3.0,
    clean: bool = True,
    subscribe_at: tuple[str, int] | None = None,
    protocol: int = 4,
) -> dict[str, Any]:
    """Publishers on ``bench/<n>`` to subscribers of ``bench/#`` (clean session ``clean``);
    delivered rate, losses, CPU share. The subscribers connect to ``subscribe_at`` if given
    (the upstream of a bridge), else to the broker the publishers use. Every client speaks MQTT
    ``protocol`` (4: 3.1.1, 5: 5.0 without properties)."""
    context = multiprocessing.get_context("fork")
    manager = context.Manager()
    ready, go, done = manager.Event(), manager.Event(), manager.Event()
    groups = [list(range(i, subscribers, 10)) for i in range(min(subscribers, 10))]
    expected = publishers * per_publisher
    with ProcessPoolExecutor(len(groups) + publishers, mp_context=context) as pool, cpu_share(running) as cpu:
        counting = []
        for group in groups:
            ids = [f"sub-{i}" for i in group]
            counting.append(pool.submit(subscribe_and_count, subscribe_at or running.address, ids, [("bench/#", qos)],
                                        expected, idle, ready, latency, clean, protocol))  # fmt: skip
            ready.wait(60)
            ready.clear()
        sending = [pool.submit(publish_messages, running.address, f"pub-{n}", n, f"bench/{n}", per_publisher, size, qos,
                               go, rate, done, protocol) for n in range(publishers)]  # fmt: skip
        go.set()
        seen = [r for f in counting for r in f.result()]
        done.set()
        spans = [f.result() for f in sending]
    manager.shutdown()
    received = sum(r.count for r in seen)
    last = max(r.last for r in seen)
    start = min(s for s, _ in spans)
    result = {
        "delivered_per_s": round(received / max(last - start, 1e-9)) if received else 0,
        "offered_per_s": round(expected / max(max(e for _, e in spans) - start, 1e-9)),
        "lost": expected * subscribers - received,
        "duplicates": sum(r.duplicates for r in seen),
        "out_of_order": sum(r.out_of_order for r in seen),
        **cpu,
    }
    if latency:
        samples = sorted(x for r in seen for x in r.latencies_us)
        if samples:
            result["p50_ms"] = round(statistics.median(samples) / 1000, 2)
            result["p99_ms"] = round(samples[int(0.99 * (len(samples) - 1))] / 1000, 2)
    return result


def connections(running: Running, count: int, workers: int = 4) -> dict[str, Any]:
    """``count`` idle clients, connected by ``workers`` processes at once, each with a few
    handshakes in flight (one sequential client measures its own round trips, not the broker):
    connects per second, the broker's CPU per connect and, with all of them held, RSS per client."""
    context = multiprocessing.get_context("fork")
    manager = context.Manager()
    go, release, spans = manager.Event(), manager.Event(), manager.Queue()
    rss_before = running.process.memory_info().rss
    cpu_before = running.process.cpu_times()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        holding = [pool.submit(hold_clients, running.address, f"idle-{w}-", count // workers, go, spans, release)
                   for w in range(workers)]  # fmt: skip
        go.set()
        done = [spans.get(timeout=600) for _ in range(workers)]
        cpu_after = running.process.cpu_times()
        time.sleep(0.5)  # let the broker settle before reading its memory
        rss_per_client = (running.process.memory_info().rss - rss_before) / (workers * (count // workers))
        release.set()
        for future in holding:
            future.result()
    manager.shutdown()
    elapsed = max(end for _, end in done) - min(start for start, _ in done)
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    connected = workers * (count // workers)
    return {"connects_per_s": round(connected / elapsed), "rss_kb_per_client": round(rss_per_client / 1024, 1),
            "cpu_us_per_connect": round(cpu / connected * 1e6)}  # fmt: skip


def _filler(running: Running, filters: int) -> socket.socket:
    """A client holding ``filters`` subscriptions (plain, + and #) that match no test topic."""
    sock, reader = open_client(running.address, "filler")
    shapes = ["other/{}", "other/+/{}", "other/{}/#"]
    wanted = [(shapes[i % 3].format(i), 0) for i in range(filters)]
    for start in range(0, len(wanted), 200):
        sock.sendall(encode_subscribe(start % 60000 + 1, *wanted[start : start + 200]))
        while not any(first == 0x90 for first, _ in reader.packets()):
            pass
    return sock


def subscription_scaling(running: Running, filters: int, messages: int) -> dict[str, Any]:
    """``filters`` - 1 non-matching subscriptions (plain, + and #) and one matching subscriber."""
    with _filler(running, filters - 1):
        return flow(running, 1, messages, 1)


def churn(running: Running, filters: int, sessions: int) -> dict[str, Any]:
    """``sessions`` clean sessions, one after another, that connect, subscribe to a filter of
    their own and disconnect while another client holds ``filters`` subscriptions: sessions per
    second and the broker's CPU per session (ending a session removes its subscriptions)."""
    with _filler(running, filters):
        cpu_before = running.process.cpu_times()
        started = time.perf_counter()
        for n in range(sessions):
            sock, reader = open_client(running.address, f"churn-{n}")
            with sock:
                sock.sendall(encode_subscribe(1, (f"churn/{n}", 0)))
                while not any(first == 0x90 for first, _ in reader.packets()):
                    pass
                sock.sendall(DISCONNECT)  # the broker ends the session, then closes
                while not reader.closed:
                    reader.packets()
        elapsed = time.perf_counter() - started
        cpu_after = running.process.cpu_times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {"sessions_per_s": round(sessions / elapsed), "cpu_us_per_session": round(cpu / sessions * 1e6)}


def admin_latency(running: Running, per_publisher: int, requests: int = 20) -> dict[str, Any]:
    """req 2 round trips while 4 publishers saturate the broker (edgemq only)."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:public").decode()}

    def timed() -> list[float]:
        samples = []
        connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=30)
        for _ in range(requests):
            started = time.perf_counter()
            connection.request("POST", "/api/v1", body=b'{"req":2,"seq":1}', headers=auth)
            connection.getresponse().read()
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
        return sorted(samples)

    idle = timed()
    with ThreadPoolExecutor(1) as pool:  # the load's own processes do the work
        load = pool.submit(flow, running, 4, per_publisher, 1)
        busy = timed()
        load.result()
    return {"idle_p99_ms": round(idle[-1], 2), "busy_p50_ms": round(statistics.median(busy), 2),
            "busy_p99_ms": round(busy[int(0.99 * (len(busy) - 1))], 2)}  # fmt: skip


def generator_ceiling(per_publisher: int, clients: int) -> dict[str, Any]:
    """4 publishers, then 4 connecting processes, against a sink that only answers CONNECT: the
    fastest the generator offers."""
    with broker_process("sink") as sink:
        context = multiprocessing.get_context("fork")
        manager = context.Manager()
        go = manager.Event()
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            futures = [pool.submit(publish_messages, sink.address, f"p{n}", n, f"bench/{n}", per_publisher, 64, 0, go)
                       for n in range(4)]  # fmt: skip
            go.set()
            spans = [f.result() for f in futures]
        manager.shutdown()
        connects = connections(sink, clients)
    elapsed = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"offered_per_s": round(4 * per_publisher / elapsed), "connects_per_s": connects["connects_per_s"],
            "cpu_us_per_connect": connects["cpu_us_per_connect"]}  # fmt: skip
