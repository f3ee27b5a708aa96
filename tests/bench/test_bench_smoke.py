"""The benchmark suite still works: every core scenario with tiny counts (no timing assertions)."""

from __future__ import annotations

import pytest

from tests.bench.smoke import smoke_rows

# the persistence and bridge scenarios have smoke tests of their own (test_bench_*_smoke.py)
CORE_SCENARIOS = ["ceiling", "fanin", "fanout", "qos1", "latency", "connections", "subscriptions", "churn", "admin",
                  "startstop", "batch", "listing"]  # fmt: skip
AB_SCENARIOS = {"fanin", "fanout", "qos1", "latency", "connections", "subscriptions 10", "churn 100"}


@pytest.mark.timeout(300)  # a dozen broker processes; slow beside the rest of the suite on 2 cores
def test_every_scenario_runs_and_reports_against_its_baseline() -> None:
    """bench.py --smoke --json: every core scenario reports, A/B figures carry amqtt's and a ratio, nothing lost."""
    rows = smoke_rows(CORE_SCENARIOS, timeout=280)
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
