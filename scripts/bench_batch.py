"""The publish_batch scenario of scripts/bench.py: MQTT round trips while the admin API publishes
a maximum-size batch (1 MB of JSON, 27 000 items).

A pinger process publishes QoS 0 messages to a topic it subscribes to, one at a time, and times
each round trip; the benchmark process posts the batches. Round trips that started while a batch
was being served are the busy ones: their p99 shows how long the batch holds the event loop.
"""

from __future__ import annotations

import base64
import http.client
import json
import multiprocessing
import statistics
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench_flows import Running
from bench_load import open_client

from broker.mqtt.encoding import DISCONNECT, encode_publish, encode_subscribe

PING_TOPIC = "ping/batch"
PING_INTERVAL = 0.001  # seconds between one round trip's end and the next one's start


def ping_round_trips(address: tuple[str, int], ready: Any, stop: Any) -> list[tuple[float, float]]:
    """(start time, round trip in seconds) of every QoS 0 publish to itself until ``stop`` is set."""
    sock, reader = open_client(address, "pinger")
    sock.sendall(encode_subscribe(1, (PING_TOPIC, 0)))
    while not any(first == 0x90 for first, _ in reader.packets()):
        pass
    ready.set()
    samples: list[tuple[float, float]] = []
    sock.settimeout(30)
    while not stop.is_set():
        started = time.perf_counter()
        sock.sendall(encode_publish(PING_TOPIC, struct.pack("!d", started)))
        while not any(first & 0xF0 == 0x30 for first, _ in reader.packets()):
            if reader.closed:
                raise ConnectionError("the broker closed the pinger")
        samples.append((started, time.perf_counter() - started))
        time.sleep(PING_INTERVAL)
    sock.sendall(DISCONNECT)
    sock.close()
    return samples


def batch_body(items: int) -> bytes:
    """A publish_batch body of ``items`` short messages (27 000 make about 1 MB)."""
    return json.dumps([{"topic": f"b/{n}", "payload": "x"} for n in range(items)], separators=(",", ":")).encode()


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[int(fraction * (len(ordered) - 1))] * 1000, 2) if ordered else 0.0


def batch_latency(running: Running, items: int, rounds: int, idle: float = 0.5) -> dict[str, Any]:
    """Round trips idle for ``idle`` seconds, then during ``rounds`` batches of ``items``: p50/p99
    idle and busy, the worst busy round trip and the median time the batch request took."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:public").decode()}
    body = batch_body(items)
    context = multiprocessing.get_context("fork")
    manager = context.Manager()
    ready, stop = manager.Event(), manager.Event()
    windows: list[tuple[float, float]] = []
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pinging = pool.submit(ping_round_trips, running.address, ready, stop)
        ready.wait(60)
        time.sleep(idle)  # idle round trips first
        connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=60)
        for _ in range(rounds):
            started = time.perf_counter()
            connection.request("POST", "/api/v4/mqtt/publish_batch", body=body, headers=auth)
            response = connection.getresponse()
            answer = json.loads(response.read())
            windows.append((started, time.perf_counter()))
            if response.status != 200 or len(answer["data"]) != items:
                raise RuntimeError(f"publish_batch answered {response.status}: {str(answer)[:200]}")
            time.sleep(0.05)
        connection.close()
        stop.set()
        samples = pinging.result()
    manager.shutdown()
    first_batch = windows[0][0]
    busy = [rtt for start, rtt in samples if any(begin <= start <= end for begin, end in windows)]
    quiet = [rtt for start, rtt in samples if start < first_batch]
    return {
        "body_kb": round(len(body) / 1024),
        "batch_ms": round(statistics.median(end - begin for begin, end in windows) * 1000, 1),
        "idle_p99_ms": _percentile(quiet, 0.99),
        "busy_p50_ms": _percentile(busy, 0.5),
        "busy_p99_ms": _percentile(busy, 0.99),
        "busy_max_ms": _percentile(busy, 1.0),
        "busy_samples": len(busy),
    }
