#!/usr/bin/env python3
"""Fuzz the admin API at length: property-based requests (tests/api_fuzz.py, drawn from the
served /api/v4/openapi.json) against an edgemq broker running in this process.

Reports how many requests were sent, the 5xx answers, the answers that are not JSON and the
ERROR log lines (the target is 0/0/0), the answers whose code the document does not list for
that operation and status, and whether MQTT still routes afterwards. Exit code 0 only when the
first three are 0 and MQTT routes. Only POST /ctrl/{action}, POST /reload and v1 req 10 are
left out: they stop, restart or reconfigure the broker under test.

  .venv/bin/python scripts/fuzz.py                        # 10 000 requests
  .venv/bin/python scripts/fuzz.py --requests 500 --seed 7 --json
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package of this checkout

from broker import BrokerSettings, EdgeBroker
from tests.api_fuzz import FuzzRequest, documented_requests, judge, mqtt_round_trip, stray_requests

EXCLUDED = frozenset({"control", "reload"})
SHOWN = 5  # examples of each kind of failure printed


class ErrorLines(logging.Handler):
    """Counts log records at ERROR and above, keeping the first few."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < SHOWN:
            self.first.append(f"{record.name}: {record.getMessage()}")


def run(requests: int, seed_value: int) -> dict[str, Any]:
    """Send ``requests`` fuzzed requests; the figures of the run."""
    errors = ErrorLines()
    logging.getLogger().addHandler(errors)
    statuses: collections.Counter[int] = collections.Counter()
    undocumented: collections.Counter[str] = collections.Counter()
    found: dict[str, list[str]] = {"server_errors": [], "not_json": [], "undocumented": []}
    counts = dict.fromkeys(found, 0)
    started = time.perf_counter()
    with EdgeBroker.run_in_thread(BrokerSettings.ephemeral(), history=0) as broker:
        host, port = broker.http_address
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as http:
            document = http.get("/api/v4/openapi.json", auth=("admin", "public")).json()
            strategy = st.one_of(documented_requests(document, EXCLUDED), stray_requests(document))

            @seed(seed_value)
            @settings(
                max_examples=requests,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(strategy)
            def one(request: FuzzRequest) -> None:
                response = request.send(http)
                statuses[response.status_code] += 1
                verdict = judge(document, request, response)
                shown = f"{request.method} {request.path[:80]} {request.query!r:.80} {request.content!r:.120}"
                for kind, failed in (("server_errors", verdict.server_error), ("not_json", verdict.not_json),
                                     ("undocumented", bool(verdict.undocumented))):  # fmt: skip
                    if failed:
                        counts[kind] += 1
                        if kind == "undocumented":
                            where = " ".join(request.operation or ("stray", request.method))
                            undocumented[f"{where} -> {response.status_code}"] += 1
                        if len(found[kind]) < SHOWN:
                            found[kind].append(f"{shown} -> {response.status_code} {response.text[:160]}")

            one()
        try:
            routes = mqtt_round_trip(broker) == [b"still routing"]
        except AssertionError:
            routes = False
    logging.getLogger().removeHandler(errors)
    return {
        "requests": sum(statuses.values()),
        "seconds": round(time.perf_counter() - started, 1),
        "server_errors": counts["server_errors"],
        "not_json": counts["not_json"],
        "error_log_lines": errors.count,
        "undocumented_codes": counts["undocumented"],
        "undocumented_by_operation": dict(undocumented.most_common()),
        "mqtt_routes_afterwards": routes,
        "statuses": dict(sorted(statuses.items())),
        "examples": {**found, "error_log_lines": errors.first},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests to send (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)  # ERROR lines are counted (ErrorLines), not printed
    report = run(args.requests, args.seed)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"requests {report['requests']} in {report['seconds']} s, statuses {report['statuses']}")
        print(f"5xx {report['server_errors']}  not JSON {report['not_json']}  ERROR log lines "
              f"{report['error_log_lines']}  undocumented codes {report['undocumented_codes']}  "
              f"MQTT routes afterwards: {'yes' if report['mqtt_routes_afterwards'] else 'NO'}")  # fmt: skip
        for where, count in report["undocumented_by_operation"].items():
            print(f"  undocumented: {count} x {where}")
        for kind, examples in report["examples"].items():
            for example in examples:
                print(f"  {kind}: {example}")
    clean = not (report["server_errors"] or report["not_json"] or report["error_log_lines"])
    return 0 if clean and report["mqtt_routes_afterwards"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
