"""The benchmark suite still runs: every scenario with tiny counts (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def test_every_scenario_reports_a_ratio_against_its_baseline() -> None:
    """scripts/bench.py --smoke prints one JSON result per subject, each with its baseline and ratio."""
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json"], capture_output=True, text=True, timeout=120, check=True
    )
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    assert {r["subject"] for r in results} >= {"EdgeBroker", "EdgeBroker.run_in_thread"}
    for result in results:
        assert result["baseline_median_ms"] > 0
        assert result["ratio"] == round(result["median_ms"] / result["baseline_median_ms"], 3)
