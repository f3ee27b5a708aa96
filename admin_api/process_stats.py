"""CPU and memory of this process (psutil), for /metrics and Prometheus."""

from __future__ import annotations

import psutil

__all__ = ["ProcessStats"]


class ProcessStats:
    """CPU share since the previous reading and resident memory, with their peaks."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading only starts the measurement
        self.cpu_max = 0.0
        self.memory_max = 0

    def read(self) -> tuple[float, int]:
        """(CPU percent, RSS bytes) now."""
        cpu = float(self._process.cpu_percent(None))
        memory = int(self._process.memory_info().rss)
        self.cpu_max = max(self.cpu_max, cpu)
        self.memory_max = max(self.memory_max, memory)
        return cpu, memory
