"""Property-based requests to the admin API (tests/api_fuzz.py), bounded: every answer is JSON
with a documented code, never a 5xx or an ERROR log line, and MQTT still routes afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import EdgeBroker
from broker.testing.threaded import ThreadedBroker
from tests.api_fuzz import FuzzRequest, documented_requests, judge, mqtt_round_trip, stray_requests
from tests.helpers import WAIT, ephemeral_settings

# Not fuzzed here: they stop, restart or reconfigure the broker under test (POST /reload can
# change the admin password), or belong to the configuration API, which has its own tests.
EXCLUDED = frozenset({"control", "reload", "get_configuration", "get_configuration_section", "get_reload"})
FUZZ = settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)


@pytest.fixture
def threaded() -> Iterator[ThreadedBroker]:
    with EdgeBroker.run_in_thread(ephemeral_settings(), history=0) as broker:
        yield broker


@pytest.fixture
def http(threaded: ThreadedBroker) -> Iterator[httpx.Client]:
    host, port = threaded.http_address
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=WAIT) as client:
        yield client


@pytest.fixture
def document(http: httpx.Client) -> Any:
    response = http.get("/api/v4/openapi.json", auth=("admin", "public"))
    assert response.status_code == 200
    return response.json()


def fuzz(
    strategy: st.SearchStrategy[FuzzRequest], http: httpx.Client, document: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Send every example of ``strategy`` and judge each answer."""

    @FUZZ
    @given(strategy)
    def one(request: FuzzRequest) -> None:
        verdict = judge(document, request, request.send(http))
        assert not verdict.server_error, request
        assert not verdict.not_json, request
        assert not verdict.undocumented, (request, verdict.undocumented)

    with caplog.at_level(logging.WARNING):
        one()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_fuzzed_requests_get_documented_json_answers(
    threaded: ThreadedBroker, http: httpx.Client, document: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Fuzzed v4 and v1 requests get JSON with a documented code, never 5xx, and MQTT still routes."""
    requests = st.one_of(documented_requests(document, EXCLUDED), stray_requests(document))
    fuzz(requests, http, document, caplog)
    assert mqtt_round_trip(threaded) == [b"still routing"]
