"""The bridge scenarios of the benchmark suite still work, with tiny counts (no timing assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench.smoke import by_metric, smoke_rows

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/mosquitto").exists(), reason="mosquitto is not installed")


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], dict[str, Any]]:
    """scripts/bench.py --smoke --json over the bridge scenarios, by (scenario, metric)."""
    return by_metric(smoke_rows(["bridge_forward", "bridge_drain"], timeout=110))


@pytest.mark.timeout(120)
def test_forwarding_is_compared_with_mosquitto_alone_and_loses_nothing(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Both QoS variants report the rate upstream beside the direct flow's; nothing lost, duplicated or reordered."""
    for scenario in ("bridge_forward qos0", "bridge_forward qos1"):
        rate = rows[(scenario, "bridge delivered_per_s")]
        assert rate["baseline"] > 0
        assert rate["ratio"] == round(rate["value"] / rate["baseline"], 2)
        for metric in ("lost", "duplicates", "out_of_order"):
            row = rows[(scenario, f"bridge {metric}")]
            assert (row["value"], row["baseline"]) == (0, 0), (scenario, metric)
        assert rows[(scenario, "bridge queue_dropped")]["value"] == 0


@pytest.mark.timeout(120)
def test_the_queue_drains_upstream_complete_and_in_order(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Every message queued while the upstream was down arrives there once, in order, and a drain rate is reported."""
    drained = {metric: row["value"] for (scenario, metric), row in rows.items() if scenario == "bridge_drain 2000"}
    assert (drained["lost"], drained["duplicates"], drained["out_of_order"], drained["queue_dropped"]) == (0, 0, 0, 0)
    assert drained["drain_per_s"] > 0
    assert rows[("bridge_drain 2000", "drain_per_s")]["target"] == 20_000
