"""The dashboards scenario of the benchmark suite still works, with tiny counts (no timing assertions)."""

from __future__ import annotations

import pytest

from tests.bench.smoke import by_metric, smoke_rows


@pytest.mark.timeout(120)
def test_fanin_with_dashboards_reports_against_fanin_alone() -> None:
    """bench.py --scenario dashboards: the rate beside fanin alone's, the pollers' request rate, nothing lost."""
    rows = by_metric(smoke_rows(["dashboards"], timeout=110))
    rate = rows[("dashboards 10", "delivered_per_s")]
    assert rate["baseline"] > 0
    assert rate["ratio"] == round(rate["value"] / rate["baseline"], 3)
    assert rows[("dashboards 10", "lost")]["value"] == 0
    assert rows[("dashboards 10", "api_requests_per_s")]["value"] > 0
