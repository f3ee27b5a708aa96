"""Running scripts/bench.py with tiny counts (--smoke --json) from the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def smoke_rows(scenarios: list[str], timeout: float) -> list[dict[str, Any]]:
    """The JSON rows of ``bench.py --smoke --json`` over ``scenarios``; fails with its stderr if it fails."""
    arguments = [arg for name in scenarios for arg in ("--scenario", name)]
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines()]


def by_metric(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``rows`` by (scenario, metric)."""
    return {(row["scenario"], row["metric"]): row for row in rows}
