"""The embedded store: one SQLite file, written by one thread in grouped transactions.

stdlib ``sqlite3`` (no dependency) in WAL mode, owned by a writer thread: the event loop hands
it lists of statements (``write``) and gets back a future that resolves once they are
committed, so an acknowledgement can wait for durability without blocking the loop. Every
batch that is waiting when the thread takes the next one goes into the same transaction: the
cost of a commit (and of its fsync) is shared by all of them. aiosqlite runs each call through
a thread too but leaves transactions to its callers; grouping the commits of many callers needs
one writer that sees them all, which is this thread.

The file is edgemq's (``PRAGMA application_id``) with a schema version (``meta``), is used by
one process at a time (an exclusive lock on ``<file>.lock``), and a file that is not a
database, or is someone else's, is refused with its name: never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["SCHEMA_VERSION", "Statement", "Store", "StoreError", "StoreLocked", "StoreStats", "Sync"]

log = logging.getLogger("edgemq.store")

SCHEMA_VERSION = 4
APPLICATION_ID = 0x6564676D  # "edgm"
Sync = Literal["always", "batched", "off"]
"""``always``: every commit is fsynced (synchronous=FULL); ``batched``: WAL with
synchronous=NORMAL (a commit survives a crash of the process, the last ones may not survive a
power loss); ``off``: no fsync."""
_SYNCHRONOUS = {"always": "FULL", "batched": "NORMAL", "off": "OFF"}
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE retained (
    topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties BLOB, expires_at REAL
);
CREATE TABLE sessions (
    client_id TEXT PRIMARY KEY, username TEXT, protocol INTEGER NOT NULL, session_expiry INTEGER, ended_at REAL
);
CREATE TABLE subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL DEFAULT 0,
    retain_as_published INTEGER NOT NULL DEFAULT 0, identifier INTEGER, PRIMARY KEY (client_id, filter)
);
CREATE TABLE messages (
    client_id TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, packet_id INTEGER, released INTEGER NOT NULL DEFAULT 0, properties BLOB, expires_at REAL,
    PRIMARY KEY (client_id, seq)
);
CREATE TABLE incoming_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
CREATE TABLE bridge_messages (
    bridge TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at REAL, PRIMARY KEY (bridge, seq)
);
"""
# A message's MQTT 5 properties (``properties``: the forwarded ones, encoded; ``expires_at``: its
# message expiry on the wall clock) are NULL for the many messages that carry none. A session's
# ``session_expiry`` is its MQTT 5 Session Expiry Interval (NULL: MQTT 3.1.1, never expires) and
# ``ended_at`` the wall-clock time its last connection ended (NULL: connected, or not known); a
# subscription's MQTT 5 options default to 0 and its identifier to NULL (none).
# What takes a store of schema version N to N + 1 (in one transaction, at open).
_MIGRATIONS: dict[int, list[str]] = {
    1: [  # 2: the queues of bridges (issue 15)
        "CREATE TABLE bridge_messages (bridge TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, PRIMARY KEY (bridge, seq))"
    ],
    2: [  # 3: messages keep their MQTT 5 properties (issue 16)
        f"ALTER TABLE {table} ADD COLUMN {column}"  # fixed names, never from input
        for table in ("retained", "messages", "bridge_messages")
        for column in ("properties BLOB", "expires_at REAL")
    ],
    3: [  # 4: sessions keep their expiry and end, subscriptions their MQTT 5 options (issue 16)
        "ALTER TABLE sessions ADD COLUMN session_expiry INTEGER",
        "ALTER TABLE sessions ADD COLUMN ended_at REAL",
        "ALTER TABLE subscriptions ADD COLUMN no_local INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE subscriptions ADD COLUMN retain_as_published INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE subscriptions ADD COLUMN identifier INTEGER",
    ],
}


class StoreError(Exception):
    """The store cannot be used; the message names the file."""


class StoreLocked(StoreError):
    """Another process uses the file."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its parameters."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store reports (req 2, v4 metrics, Prometheus)."""

    path: str
    file_bytes: int
    """The database file and its write-ahead log."""
    pending_writes: int
    """Batches handed to the writer and not committed yet."""
    commits: int
    commit_seconds_total: float
    """Time spent committing, summed (with ``commits``: the mean commit latency)."""
    last_commit_seconds: float
    write_errors: int
    """Batches that could not be committed."""
    last_error: str | None
    """The last write error, until a later commit succeeds."""


_STOP = object()


class Store:
    """An open store; ``close`` commits what was written and ends the writer thread."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock_file: int) -> None:
        self.path = path
        self._connection = connection
        self._lock_file = lock_file
        self._pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="edgemq-store", daemon=True)
        self._thread.start()
        self._turn: tuple[list[Statement], asyncio.Future[None]] | None = None  # this loop turn's batch
        self._closed = False
        self._submitted = 0  # batches handed to the thread (loop side) ...
        self._settled = 0  # ... and committed or failed (thread side)
        self.commits = 0
        """Transactions committed (each may hold many ``write`` batches)."""
        self._commit_seconds = 0.0
        self._last_commit_seconds = 0.0
        self._errors = 0
        self._last_error: str | None = None

    @classmethod
    def open(cls, path: Path | str, sync: Sync = "batched") -> Store:
        """Open (or create) the store at ``path``; StoreError if the file cannot be used."""
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_file = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"cannot open the store {path}: {path.parent} is not a directory") from None
        except OSError as exc:
            raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_file)
            raise StoreLocked(f"the store {path} is in use by another process") from None
        try:
            connection = _connect(path, sync)
        except BaseException:
            os.close(lock_file)  # closing the descriptor releases the lock
            raise
        return cls(path, connection, lock_file)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query (start-up only: the writer thread must not be writing meanwhile)."""
        return self._connection.execute(sql, params).fetchall()

    def write(self, statements: Sequence[Statement]) -> asyncio.Future[None]:
        """Apply ``statements`` in one transaction with whatever else is waiting; the future
        resolves once they are committed (or fails with StoreError).

        Writes made in the same event-loop turn are one batch with one future; batches reach
        the writer thread in the order they were made, so a later write never lands first.
        """
        if self._turn is not None:
            batch, done = self._turn
            batch.extend(statements)
            return done
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        done.add_done_callback(_retrieve)  # many writes are not awaited: their failure is logged once, here
        if self._closed:  # a task that outlived the broker's stop
            done.set_exception(StoreError(f"the store {self.path} is closed"))
            return done
        self._turn = (list(statements), done)
        loop.call_soon(self._submit)
        return done

    def _submit(self) -> None:
        """Hand this turn's batch to the writer thread."""
        if self._turn is None:
            return
        batch, done = self._turn
        self._turn = None
        self._submitted += 1
        self._pending.put((batch, done.get_loop(), done))

    def stats(self) -> StoreStats:
        """A snapshot of the store's figures."""
        size = 0
        for name in (str(self.path), f"{self.path}-wal"):
            with contextlib.suppress(OSError):
                size += os.stat(name).st_size
        return StoreStats(
            str(self.path),
            size,
            self._submitted - self._settled + (self._turn is not None),
            self.commits,
            self._commit_seconds,
            self._last_commit_seconds,
            self._errors,
            self._last_error,
        )

    def close(self) -> None:
        """Commit what was written, stop the writer thread, close the file and its lock."""
        self._submit()
        self._closed = True
        self._pending.put(_STOP)
        self._thread.join()
        self._connection.close()
        os.close(self._lock_file)

    def _write_loop(self) -> None:
        while True:
            first = self._pending.get()
            if first is _STOP:
                return
            batch = [first]
            stopping = False
            with contextlib.suppress(queue.Empty):
                while True:  # everything waiting now shares this transaction
                    item = self._pending.get_nowait()
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
            errors = self._commit_all([statements for statements, _, _ in batch])
            self._settled += len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], StoreError | None]]] = {}
            for (_, loop, done), error in zip(batch, errors, strict=True):
                by_loop.setdefault(loop, []).append((done, error))
            for loop, outcomes in by_loop.items():  # one wake-up per loop, not per future
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, outcomes)
            if stopping:
                return

    def _commit_all(self, batches: list[Sequence[Statement]]) -> list[StoreError | None]:
        """Commit ``batches`` in one transaction; if that fails, each in its own (in order), so
        that one batch's failure is not every batch's."""
        error = self._commit(batches)
        if error is None:
            return [None] * len(batches)
        if len(batches) == 1:
            return [self._failed(error)]
        outcomes: list[StoreError | None] = []
        for statements in batches:
            alone = self._commit([statements])
            outcomes.append(self._failed(alone) if alone is not None else None)
        return outcomes

    def _commit(self, batches: list[Sequence[Statement]]) -> sqlite3.Error | None:
        connection = self._connection
        started = time.perf_counter()
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statements in batches:
                for statement in statements:
                    connection.execute(statement.sql, statement.params)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            return exc
        elapsed = time.perf_counter() - started
        self.commits += 1
        self._commit_seconds += elapsed
        self._last_commit_seconds = elapsed
        if self._last_error is not None:
            log.warning("the store %s is written again", self.path)
            self._last_error = None
        return None

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        """Count a batch that could not be committed; the first of a run of failures is logged
        as an ERROR."""
        error = StoreError(f"cannot write the store {self.path}: {exc}")
        self._errors += 1
        if self._last_error is None:
            log.error("%s (what needs it is not acknowledged until writes succeed)", error)
        self._last_error = str(error)
        return error


def _retrieve(done: asyncio.Future[None]) -> None:
    """Mark a failure as seen (the store logs it): asyncio would log every unawaited one again."""
    if not done.cancelled():
        done.exception()


def _settle(outcomes: list[tuple[asyncio.Future[None], StoreError | None]]) -> None:
    for done, error in outcomes:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _connect(path: Path, sync: Sync) -> sqlite3.Connection:
    """The connection to an edgemq store at ``path``, created with the schema if new."""
    new = not path.exists() or path.stat().st_size == 0
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from None
    try:
        if new:
            _create(connection)
        else:
            _check(connection, path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={_SYNCHRONOUS[sync]}")
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StoreError(f"the store {path} is not a readable edgemq store: {exc}") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _create(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute("BEGIN")
    for statement in filter(None, (part.strip() for part in _SCHEMA.split(";"))):
        connection.execute(statement)
    connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    connection.execute("COMMIT")


def _check(connection: sqlite3.Connection, path: Path) -> None:
    """StoreError unless ``path`` holds an edgemq store of a schema this version reads."""
    (application_id,) = connection.execute("PRAGMA application_id").fetchone()
    if application_id != APPLICATION_ID:
        raise StoreError(f"the store {path} is not an edgemq store (application id {application_id:#x})")
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = row[0] if row is not None else "none"
    if not str(found).isdigit() or not 1 <= int(found) <= SCHEMA_VERSION:
        raise StoreError(f"the store {path} has schema version {found}; this edgemq reads 1 to {SCHEMA_VERSION}")
    (verdict,) = connection.execute("PRAGMA quick_check").fetchone()
    if verdict != "ok":
        raise StoreError(f"the store {path} is damaged: {verdict}")
    if int(found) < SCHEMA_VERSION:
        _migrate(connection, path, int(found))


def _migrate(connection: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring a store of an earlier schema version to this one, in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    for step in range(version, SCHEMA_VERSION):
        for statement in _MIGRATIONS[step]:
            connection.execute(statement)
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    connection.execute("COMMIT")
    log.info("the store %s was migrated from schema version %d to %d", path, version, SCHEMA_VERSION)
