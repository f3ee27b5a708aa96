"""The dashboards scenario of scripts/bench.py: fanin while 10 dashboards are open.

A dashboard's cost on the broker is the API requests its page makes. Each one here is a thread
of a poller process making the requests of a page with its clients panel shown (the panel that
asks the most): GET /api/v4/metrics and one page of /api/v4/clients every 2 s, and
/api/v4/brokers plus /api/v4/mqtt/retained?_limit=1 every 10 s (admin_api/dashboard_static/:
POLL_MS and SLOW_EVERY in dashboard.js, PAGE_SIZE in panels.js). The topic tree panel is not
polled (it loads when opened and on Refresh), so it is not modelled. Fanin alone and fanin with the dashboards run
on fresh edgemq processes, alternating which goes first; the figures are medians.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
from bench_flows import broker_process, flow

POLL_S = 2.0
SLOW_EVERY = 5
PAGE_SIZE = 20


def _dashboard(http_port: int, offset: float, stop: Any, counts: list[int]) -> None:
    """One open page: its polls until ``stop`` is set; appends the requests it made (errors raise)."""
    made, tick = 0, 0
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}/api/v4", auth=("admin", "public"), timeout=30) as api:
        time.sleep(offset)  # pages opened at different moments
        while not stop.is_set():
            paths = ["/metrics", f"/clients?_page=1&_limit={PAGE_SIZE}"]
            if tick % SLOW_EVERY == 0:
                paths += ["/brokers", "/mqtt/retained?_limit=1"]
            for path in paths:
                api.get(path).raise_for_status()
            made += len(paths)
            tick += 1
            stop.wait(POLL_S)
    counts.append(made)


def poll_like_dashboards(http_port: int, dashboards: int, ready: Any, stop: Any) -> float:
    """``dashboards`` pages polling the API until ``stop`` is set: the requests per second they made."""
    counts: list[int] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=_dashboard, args=(http_port, n * POLL_S / dashboards, stop, counts))
               for n in range(dashboards)]  # fmt: skip
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()
    if len(counts) != dashboards:
        raise RuntimeError("a dashboard poller failed")
    return sum(counts) / (time.perf_counter() - started)


def _fanin(per_publisher: int, dashboards: int) -> dict[str, Any]:
    with broker_process("edgemq") as running:
        if not dashboards:
            return flow(running, 4, per_publisher, 1)
        context = multiprocessing.get_context("fork")
        manager = context.Manager()
        ready, stop = manager.Event(), manager.Event()
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            polling = pool.submit(poll_like_dashboards, running.http_port, dashboards, ready, stop)
            ready.wait(60)
            time.sleep(POLL_S)  # every page has made its first requests
            result = flow(running, 4, per_publisher, 1)
            stop.set()
            result["api_requests_per_s"] = round(polling.result(), 1)
        manager.shutdown()
        return result


def dashboards_fanin(repeat: int, per_publisher: int, dashboards: int = 10) -> list[dict[str, Any]]:
    """fanin (4 publishers -> 1 subscriber, QoS 0) with ``dashboards`` open pages vs without."""
    alone: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    for n in range(repeat):
        for count in (0, dashboards) if n % 2 == 0 else (dashboards, 0):
            (watched if count else alone).append(_fanin(per_publisher, count))
    rows = []
    for metric in ("delivered_per_s", "cpu", "lost"):
        value = statistics.median(r[metric] for r in watched)
        baseline = statistics.median(r[metric] for r in alone)
        rows.append({"scenario": f"dashboards {dashboards}", "metric": metric, "value": value, "baseline": baseline,
                     "ratio": round(value / baseline, 3) if baseline else None, "runs": repeat})  # fmt: skip
    requests = statistics.median(r["api_requests_per_s"] for r in watched)
    rows.append({"scenario": f"dashboards {dashboards}", "metric": "api_requests_per_s", "value": requests,
                 "baseline": None, "ratio": None, "runs": repeat})  # fmt: skip
    return rows
