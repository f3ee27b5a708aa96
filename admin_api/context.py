"""What every endpoint works with: the shared state, the broker control and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from broker.config.settings import LiveSettings
from broker.control import BrokerControl
from broker.state import BrokerState

__all__ = ["ApiContext"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Passed explicitly to every endpoint factory; the API keeps no module globals."""

    state: BrokerState
    control: BrokerControl
    settings: LiveSettings
    """Read ``settings.current`` on every request: live changes apply at once."""
