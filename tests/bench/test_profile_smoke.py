"""scripts/profile_load.py still runs: the broker's profile under a tiny load (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "profile_load.py"


@pytest.mark.timeout(120)
def test_profile_of_a_small_connect_load_names_the_connection_path() -> None:
    """The profile comes back from the stopped command and shows edgemq's connection code."""
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "connections", "--count", "40", "--sort", "cumtime", "--lines", "200"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "connects_per_s" in completed.stdout
    assert "serve_connection" in completed.stdout
