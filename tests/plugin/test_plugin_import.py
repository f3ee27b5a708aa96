"""Loading the pytest plugin costs a pytest run that never uses edgemq nothing but the plugin itself."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import pytest
before = set(sys.modules)
import broker.testing.pytest_plugin
print("\\n".join(sorted(set(sys.modules) - before)))
"""


def test_plugin_import_loads_no_broker_code() -> None:
    """Importing the ``pytest11`` entry point loads only itself (and stdlib): no broker, amqtt or admin API."""
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    loaded = {name for name in probe.stdout.split() if name.partition(".")[0] not in sys.stdlib_module_names}
    assert loaded == {"broker", "broker.testing", "broker.testing.pytest_plugin"}
