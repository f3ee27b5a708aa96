"""Settings of the embedded store: edgemq's ``persistence`` section and NanoMQ's ``sqlite`` section.

``persistence { enable, path, sync }`` is what the broker reads. NanoMQ's ``sqlite`` section is
accepted so a NanoMQ file loads unchanged, and ``sqlite_rules`` folds it into ``persistence``:

- ``sqlite.enable = true`` turns persistence on when no layer sets ``persistence.enable``;
- ``sqlite.mounted_file_path``, when given, is the directory of the store file (``edgemq.db``)
  when no layer sets ``persistence.path``;
- ``disk_cache_size``, ``flush_mem_threshold`` and ``resend_interval`` are accepted and unused:
  every commit group is on disk before it is acknowledged, so nothing waits in memory, and
  ``resend_interval`` is NanoMQ's bridge resend pacing (edgemq's bridges resend at once on reconnect).

A relative path is relative to the directory of the configuration file that holds it (the
loader, ``broker.config.source``, makes it absolute; ``FILE_PATH_KEYS`` names these keys), and
otherwise (environment, command line, no file) to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from broker.config.values import Section

__all__ = ["FILE_PATH_KEYS", "STORE_FILE_NAME", "Persistence", "Sqlite", "sqlite_rules"]

STORE_FILE_NAME = "edgemq.db"
"""The store file's name in ``sqlite.mounted_file_path``."""
FILE_PATH_KEYS = (("persistence", "path"), ("sqlite", "mounted_file_path"))
"""Keys holding a path that is relative to the configuration file it is written in."""


def _check_file_path(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (name the store file, e.g. data/edgemq.db)")
    if value.endswith(("/", os.sep)):
        raise ValueError(f"names a directory, not the store file: {value!r} (e.g. {value}{STORE_FILE_NAME})")
    return value


def _check_directory(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (name the store's directory)")
    return value


class Persistence(Section):
    """edgemq: the embedded store of retained messages, sessions and their queued messages."""

    enable: bool = False
    """Off unless configured: ``BrokerSettings()``, ``ephemeral()`` and the pytest fixture keep
    everything in memory; the shipped ``config/edgemq.conf`` turns it on."""
    path: Annotated[str, AfterValidator(_check_file_path)] = f"data/{STORE_FILE_NAME}"
    """The store file; a relative path is relative to the configuration file's directory."""
    sync: Literal["always", "batched", "off"] = "always"
    """always: every commit is fsynced before it is acknowledged; batched: WAL with SQLite's
    synchronous=NORMAL (a power loss may lose the last commits, never the file); off: no fsync."""

    @property
    def store_path(self) -> Path:
        """The store file as an absolute path (a relative ``path``: against the current directory)."""
        return Path(self.path).absolute()


class Sqlite(Section):
    """NanoMQ's ``sqlite`` section, folded into ``persistence`` (see the module docstring)."""

    enable: bool = False
    disk_cache_size: Annotated[int, Field(ge=1)] = 102400
    """Accepted for NanoMQ files; unused (nothing waits in memory to be written)."""
    mounted_file_path: Annotated[str, AfterValidator(_check_directory)] = "/tmp/"  # noqa: S108 - NanoMQ's default, used only when written in a file
    """The store's directory when written and ``persistence.path`` is not."""
    flush_mem_threshold: Annotated[int, Field(ge=1)] = 100
    """Accepted for NanoMQ files; unused (every commit group is flushed before it is acknowledged)."""
    resend_interval: Annotated[int, Field(ge=0)] = 5000
    """Milliseconds; accepted for NanoMQ files; unused (bridges resend at once on reconnect)."""


def sqlite_rules(persistence: Persistence, sqlite: Sqlite) -> Persistence:
    """``persistence`` with what ``sqlite`` says in place of the keys no layer set."""
    update: dict[str, object] = {}
    if "enable" not in persistence.model_fields_set and sqlite.enable:
        update["enable"] = True
    if "path" not in persistence.model_fields_set and "mounted_file_path" in sqlite.model_fields_set:
        update["path"] = os.path.join(sqlite.mounted_file_path, STORE_FILE_NAME)
    return persistence.model_copy(update=update) if update else persistence
