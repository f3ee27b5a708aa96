"""Writing configuration files for the config tests, and reading the problems a load reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config.source import ConfigError, ConfigSource

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def write(tmp_path: Path, text: str, name: str = "edgemq.conf") -> Path:
    """Write ``text`` to ``tmp_path / name`` and return that path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(source: ConfigSource) -> list[str]:
    """The problems of the ConfigError that loading ``source`` raises."""
    with pytest.raises(ConfigError) as caught:
        source.load()
    return caught.value.problems
