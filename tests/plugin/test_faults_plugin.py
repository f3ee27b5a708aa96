"""The pytest plugin's faults as a user meets them: the marker option, the reset fixture, and
README's worked example, run by pytester."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker import EdgeBroker
from broker.testing.pytest_plugin import enable_faults

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def inner_ini(pytester: pytest.Pytester) -> None:
    """The inner runs' configuration: pytest-asyncio's loop scope set, as a user project would."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def readme_block(containing: str) -> str:
    """The README's python block that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    found = [str(block) for block in blocks if containing in block]
    assert len(found) == 1, f"{len(found)} README python blocks contain {containing!r}"
    return found[0]


def test_readme_restart_example_passes(pytester: pytest.Pytester) -> None:
    """README's worked example (no QoS 1 message lost across a restart) passes as written."""
    pytester.makepyfile(readme_block("def test_no_order_is_lost_across_a_restart"))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


MARKER_TESTS = """
import aiomqtt
import pytest

@pytest.mark.edgemq(faults={"refuse_connects": {"n": 1, "code": 5}, "duplicate_deliveries": 1})
@pytest.mark.anyio
async def test_first_connect_is_refused(mqtt_broker):
    assert mqtt_broker.faults.active_faults == [
        "refuse the next 1 connect(s) by CONNACK 5",
        "duplicate the next 1 QoS 1 deliveries",
    ]
    with pytest.raises(aiomqtt.MqttCodeError):
        async with aiomqtt.Client(mqtt_broker.mqtt_host, mqtt_broker.mqtt_port):
            pass
    async with aiomqtt.Client(mqtt_broker.mqtt_host, mqtt_broker.mqtt_port):
        pass

@pytest.fixture
def anyio_backend():
    return "asyncio"

def test_leaves_a_fault(mqtt_broker_reset):
    mqtt_broker_reset.faults.refuse_connects(5)

def test_starts_without_it(mqtt_broker_reset):
    assert mqtt_broker_reset.faults.active_faults == []
"""


def test_marker_enables_faults_and_reset_clears_them(pytester: pytest.Pytester) -> None:
    """@pytest.mark.edgemq(faults=...) enables faults before the test body; mqtt_broker_reset
    hands over the session broker without the faults an earlier test left."""
    pytester.makepyfile(MARKER_TESTS)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=3)


def test_marker_rejects_an_unknown_fault() -> None:
    """A fault name the marker does not know is a usage error naming the known ones."""
    with pytest.raises(pytest.UsageError, match=r"unknown faults.*black_hole.*known: delay_deliveries"):
        enable_faults(EdgeBroker(), {"black_hole": "app"})
