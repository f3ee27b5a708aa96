"""pytest plugin (entry point ``pytest11``): in-process MQTT broker fixtures.

- ``mqtt_broker``: a fresh broker per test on free ports, running on a background thread, so it
  works the same in sync tests and in pytest-asyncio or anyio tests (no event loop is shared).
- ``mqtt_broker_session``: one broker for the whole session; ``mqtt_broker_reset`` hands it to a
  test after a ``reset()`` (no clients, sessions, retained messages or counters left over).
- ``@pytest.mark.edgemq(...)`` sets the broker's options for ``mqtt_broker``:
  ``allow_anonymous``, ``admin_username``, ``admin_password``, ``history``, ``plugins`` (amqtt
  plugins, as the configuration's ``plugins`` section: ``{"pkg.module.Class": {options}}``), a whole
  ``settings=BrokerSettings(...)``, or ``conf="path/edgemq.conf"`` (its listeners and admin API
  moved to free loopback ports, its persistence off), and ``faults={name: arguments}`` enabled
  before the test runs (see ``enable_faults``).
- Every fixture's broker keeps its state in memory, so each test starts fresh; a test that wants
  the store passes ``settings=`` with ``persistence=Persistence(enable=True, path=...)``.

pytest loads this module in every run where edgemq is installed, so at import time it needs only
pytest and the standard library; the broker is imported inside the fixtures that start one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from broker.config.settings import BrokerSettings
    from broker.faults import Faults
    from broker.testing.threaded import ThreadedBroker

_MARKER = "edgemq"
_OPTIONS = {"allow_anonymous", "admin_username", "admin_password", "conf", "faults", "history", "plugins", "settings"}
# the faults a marker may enable: those that need no connected client
_MARKER_FAULTS = {"delay_deliveries", "drop_deliveries", "duplicate_deliveries", "refuse_connects", "withhold_acks"}


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--edgemq-log-level``: log level of the broker's own loggers during tests."""
    group = parser.getgroup("edgemq", "edgemq MQTT broker fixtures")
    group.addoption("--edgemq-log-level", default=None, help="log level of the edgemq loggers (e.g. DEBUG)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and apply the log level option."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): options of the mqtt_broker fixture ({', '.join(sorted(_OPTIONS))})",
    )
    level = config.getoption("--edgemq-log-level")
    if level:
        logging.getLogger("edgemq").setLevel(level.upper())


def settings_for_test(options: dict[str, Any]) -> tuple[BrokerSettings, int]:
    """Broker settings on free loopback ports, and the history size, from marker options."""
    from broker.config.settings import BrokerSettings
    from broker.config.source import ConfigSource

    unknown = set(options) - _OPTIONS
    if unknown:
        raise pytest.UsageError(f"unknown @pytest.mark.{_MARKER} options: {sorted(unknown)}")
    settings = options.get("settings") or BrokerSettings.ephemeral()
    if "conf" in options:  # the user's file, on free loopback ports, in memory (its store may be in use)
        isolated = {
            "listeners": {"tcp": {"bind": "127.0.0.1:0"}},
            "http_server": {"ip_addr": "127.0.0.1", "port": 0},
            "persistence": {"enable": False},
        }
        settings = ConfigSource(Path(options["conf"]), cli=isolated).load()
    http = settings.http_server.model_copy(
        update={
            key: options[option]
            for option, key in (("admin_username", "username"), ("admin_password", "password"))
            if option in options
        }
    )
    auth = settings.auth.model_copy(
        update={"allow_anonymous": options.get("allow_anonymous", settings.auth.allow_anonymous)}
    )
    if "plugins" in options:  # validated like the configuration's section
        settings = BrokerSettings.model_validate(settings.model_dump() | {"plugins": options["plugins"]})
    return settings.model_copy(update={"http_server": http, "auth": auth}), int(options.get("history", 10_000))


class _Faulted(Protocol):
    @property
    def faults(self) -> Faults: ...


def enable_faults(broker: _Faulted, faults: dict[str, Any]) -> None:
    """Enable the marker's ``faults``: each key a method of ``broker.faults``, each value its
    keyword arguments (a dict) or its first argument (anything else), e.g.
    ``faults={"refuse_connects": 2, "delay_deliveries": {"seconds": 0.5, "topic_filter": "a/#"}}``."""
    unknown = set(faults) - _MARKER_FAULTS
    if unknown:
        raise pytest.UsageError(
            f"unknown faults in @pytest.mark.{_MARKER}: {sorted(unknown)}; known: {', '.join(sorted(_MARKER_FAULTS))}"
        )
    for name, arguments in faults.items():
        enable = getattr(broker.faults, name)
        if isinstance(arguments, dict):
            enable(**arguments)
        else:
            enable(arguments)


@pytest.fixture
def mqtt_broker(request: pytest.FixtureRequest) -> Iterator[ThreadedBroker]:
    """A fresh broker for one test, on free ports, with the marker's faults enabled; stopped
    (thread joined) after the test."""
    from broker.lifecycle import EdgeBroker

    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        options.update(marker.kwargs)
    settings, history = settings_for_test(options)
    with EdgeBroker.run_in_thread(settings, history=history) as broker:
        enable_faults(broker, options.get("faults") or {})
        yield broker


@pytest.fixture(scope="session")
def mqtt_broker_session() -> Iterator[ThreadedBroker]:
    """One broker for the whole test session, on free ports."""
    from broker.config.settings import BrokerSettings
    from broker.lifecycle import EdgeBroker

    with EdgeBroker.run_in_thread(BrokerSettings.ephemeral()) as broker:
        yield broker


@pytest.fixture
def mqtt_broker_reset(mqtt_broker_session: ThreadedBroker) -> ThreadedBroker:
    """The session's broker, reset: no faults, clients, sessions, retained messages, counters or history."""
    mqtt_broker_session.reset()
    return mqtt_broker_session
