"""The plugin scenario of the benchmark suite still works, with tiny counts (no timing assertions)."""

from __future__ import annotations

import pytest

from tests.bench.smoke import by_metric, smoke_rows


@pytest.mark.timeout(120)
def test_each_plugin_variant_is_compared_with_no_plugin_and_loses_nothing() -> None:
    """fanin_plugins: the event logger and the one-hook plugin report beside no plugin, nothing lost."""
    rows = by_metric(smoke_rows(["fanin_plugins"], timeout=110))
    for variant in ("event_logger", "received"):
        rate = rows[("fanin_plugins", f"{variant} delivered_per_s")]
        assert rate["baseline"] > 0
        assert rate["ratio"] == round(rate["value"] / rate["baseline"], 2)
        for metric in ("lost", "duplicates", "out_of_order"):
            row = rows[("fanin_plugins", f"{variant} {metric}")]
            assert (row["value"], row["baseline"]) == (0, 0), (variant, metric)
