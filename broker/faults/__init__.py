"""Faults a test enables on the broker it embeds: refused connects, dropped, delayed or
duplicated deliveries, withheld acknowledgements, dropped and black-holed connections.

Only embedding code reaches them (``EdgeBroker.faults``, the threaded broker's ``faults``, the
pytest marker's ``faults=`` option): neither the admin API nor the configuration names them.
"""

from broker.faults.delays import DelayLine, HeldCopy
from broker.faults.plans import DeliveryVerdict
from broker.faults.registry import ConnectionFaults, Faults
from broker.faults.scope import FaultScope

__all__ = ["ConnectionFaults", "DelayLine", "DeliveryVerdict", "FaultScope", "Faults", "HeldCopy"]
