"""The MQTT 5 scenarios of the benchmark suite still work, with tiny counts (no timing assertions)."""

from __future__ import annotations

import pytest

from tests.bench.smoke import by_metric, smoke_rows


@pytest.mark.timeout(150)
def test_mqtt5_clients_are_compared_with_3_1_1_clients_and_lose_nothing() -> None:
    """fanin_mqtt5 and fanout_mqtt5: MQTT 5 clients report beside 3.1.1 clients, nothing lost."""
    rows = by_metric(smoke_rows(["fanin_mqtt5", "fanout_mqtt5"], timeout=140))
    for scenario in ("fanin_mqtt5", "fanout_mqtt5"):
        rate = rows[(scenario, "mqtt5 delivered_per_s")]
        assert rate["baseline"] > 0
        assert rate["value"] > 0
        for metric in ("lost", "duplicates", "out_of_order"):
            row = rows[(scenario, f"mqtt5 {metric}")]
            assert (row["value"], row["baseline"]) == (0, 0), (scenario, metric)
