"""``FaultScope``: one enabled fault, undone by ``undo()`` or at the end of a ``with`` block."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

__all__ = ["FaultScope"]

log = logging.getLogger("edgemq.faults")


class FaultScope:
    """An enabled fault: ``undo()`` (or leaving the ``with`` block) clears it, once.

    ``description`` says what it does, for the log and for ``Faults.active_faults``.
    """

    def __init__(self, description: str, clear: Callable[[], None]) -> None:
        self.description = description
        self._clear: Callable[[], None] | None = clear
        log.info("fault enabled: %s", description)

    @property
    def is_active(self) -> bool:
        """Whether the fault is still in force (not undone, not used up)."""
        return self._clear is not None

    def undo(self) -> None:
        """Clear the fault now (nothing happens if it is cleared already)."""
        clear, self._clear = self._clear, None
        if clear is not None:
            clear()
            log.info("fault cleared: %s", self.description)

    def __enter__(self) -> FaultScope:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.undo()

    def __repr__(self) -> str:
        state = "active" if self.is_active else "cleared"
        return f"<FaultScope {self.description!r} {state}>"
