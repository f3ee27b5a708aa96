"""The benchmark suite still works: every scenario with tiny counts (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
AB_SCENARIOS = {"fanin", "fanout", "qos1", "latency", "connections", "subscriptions 10", "churn 100"}


@pytest.mark.timeout(300)  # a dozen broker processes; slow beside the rest of the suite on 2 cores
def test_every_scenario_runs_and_reports_against_its_baseline() -> None:
    """scripts/bench.py --smoke --json: every scenario reports, A/B figures carry amqtt's and a ratio, nothing lost."""
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json"], capture_output=True, text=True, timeout=280, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [json.loads(line) for line in completed.stdout.splitlines()]
    scenarios = {row["scenario"] for row in rows}
    assert AB_SCENARIOS | {"ceiling", "admin", "startstop", "listing 20", "batch"} <= scenarios
    for row in rows:
        if row["scenario"] in AB_SCENARIOS and row["metric"] in ("delivered_per_s", "connects_per_s", "sessions_per_s"):
            assert row["baseline"] > 0
            assert row["ratio"] == round(row["value"] / row["baseline"], 2)
    edgemq = {(row["scenario"], row["metric"]): row["value"] for row in rows}
    assert edgemq[("qos1", "lost")] == 0
    assert edgemq[("qos1", "duplicates")] == 0
    assert edgemq[("qos1", "out_of_order")] == 0
