"""The persistence scenarios of the benchmark suite still work, with tiny counts (no timing assertions)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench.smoke import by_metric, smoke_rows

VARIANTS = {"qos1_persistent": ("always", "batched", "off"), "fanin_persistent": ("always",),
            "fanout_persistent": ("always",)}  # fmt: skip


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], dict[str, Any]]:
    """scripts/bench.py --smoke --json over the persistence scenarios, by (scenario, metric)."""
    return by_metric(smoke_rows([*VARIANTS, "startup_store"], timeout=110))


@pytest.mark.timeout(120)
def test_each_variant_is_compared_with_edgemq_in_memory_and_loses_nothing(
    rows: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Every persistent variant reports its rate beside memory's, nothing lost, duplicated or reordered."""
    for scenario, variants in VARIANTS.items():
        for variant in variants:
            rate = rows[(scenario, f"{variant} delivered_per_s")]
            assert rate["baseline"] > 0
            assert rate["ratio"] == round(rate["value"] / rate["baseline"], 2)
            for metric in ("lost", "duplicates", "out_of_order"):
                row = rows[(scenario, f"{variant} {metric}")]
                assert (row["value"], row["baseline"]) == (0, 0), (scenario, variant, metric)


@pytest.mark.timeout(120)
def test_persistent_variants_commit_to_their_store(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """The store of every persistent variant committed (the subscriber's session at least); memory has none."""
    for scenario, variants in VARIANTS.items():
        for variant in variants:
            commits = rows[(scenario, f"{variant} store_commits")]
            assert commits["value"] > 0
            assert commits["baseline"] == 0


@pytest.mark.timeout(120)
def test_startup_restores_the_prepared_store(rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """startup_store times both starts and the broker restored every prepared session, message and retained one."""
    ready = rows[("startup_store", "always ready_s")]
    assert ready["value"] > 0
    assert ready["baseline"] > 0
    restored = {m: rows[("startup_store", f"restored_{m}")]["value"] for m in ("sessions", "queued", "retained")}
    assert restored == {"sessions": 100, "queued": 30, "retained": 1_000}
