"""A bounded live fuzz of the MQTT 5 protocol level (tests/mqtt5_fuzz.py): raw clients send a valid
MQTT 5 CONNECT then garbage of one family; after each, the broker still serves a paho-mqtt
MQTTv5 round trip and has logged no ERROR and no traceback. scripts/fuzz_mqtt5.py runs it at length.
"""

from __future__ import annotations

import logging
import random

import pytest

from tests.helpers import ephemeral_settings, running_broker
from tests.mqtt5_fuzz import FAMILIES, FUZZ_MQTT, draw_case, fuzz_round, loud

pytestmark = pytest.mark.anyio

CASES = 10  # per family; scripts/fuzz_mqtt5.py runs for as long as asked
SEED = 16


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_the_broker_survives_malformed_mqtt5_input(family: str, caplog: pytest.LogCaptureFixture) -> None:
    """4.13: after each bad MQTT 5 input the broker routes a paho MQTTv5 round trip and logs no ERROR or traceback."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="edgemq.mqtt")  # where an unexpected exception of a read loop shows
    rng = random.Random(f"{SEED}-{family}")
    async with running_broker(ephemeral_settings(mqtt=FUZZ_MQTT)) as broker:
        for number in range(CASES):
            case = draw_case(rng, number, family)
            await fuzz_round(broker, case, number)
            assert loud(caplog.records) == [], case.describe()
    assert loud(caplog.records) == []
