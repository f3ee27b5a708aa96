"""Benchmark program (scripts/bench.py, listing): time admin API requests from their own process.

Usage: time_requests.py HTTP_PORT USER PASSWORD RUNS. Sends GET /healthz, v1 req 5 and
GET /api/v4/clients ``RUNS`` times each on one keep-alive connection and prints one JSON object:
the seconds of every request by name, and "clients listed" (how many clients the last listing held).
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import time

REQUESTS: dict[str, tuple[str, str, bytes | None]] = {
    "healthz": ("GET", "/healthz", None),
    "v1 req 5": ("POST", "/api/v1", b'{"req":5,"seq":1}'),
    "GET /api/v4/clients": ("GET", "/api/v4/clients", None),
}


def main(argv: list[str]) -> None:
    port, user, password, runs = int(argv[0]), argv[1], argv[2], int(argv[3])
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    samples: dict[str, list[float]] = {name: [] for name in REQUESTS}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = b""
    for _ in range(runs):
        for name, (method, path, body) in REQUESTS.items():
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=auth)
            response = connection.getresponse()
            data = response.read()
            samples[name].append(time.perf_counter() - started)
            assert response.status == 200, (name, response.status)
    print(json.dumps({**samples, "clients listed": len(json.loads(data)["data"])}))


if __name__ == "__main__":
    main(sys.argv[1:])
