"""Where the ``edgemq`` command's log records go: a queue, drained by a thread that writes them.

Formatting a line and writing it to the console or a file would otherwise happen on the event
loop, inside whatever logged (a connect, a disconnect). The loop only appends the record to a
queue that never wakes anyone; a ``QueueListener`` thread that owns the real handlers looks at
it every ``POLL_INTERVAL`` seconds and writes what it finds. Only the command does this: an embedded
``EdgeBroker`` leaves its host program's logging alone.
"""

from __future__ import annotations

import collections
import copy
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path, PurePath

from broker.config.settings import Log

__all__ = [
    "LINE_FORMAT",
    "POLL_INTERVAL",
    "DeferredQueueHandler",
    "RecordQueue",
    "direct_handlers",
    "lean_records",
    "log_output",
    "python_log_level",
]

POLL_INTERVAL = 0.05
"""Seconds between the listener thread's looks at the queue (how late a line may be written)."""

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_IMMUTABLE = (str, int, float, bytes, type(None), Enum, PurePath)
"""Argument types whose text cannot change between the log call and the listener formatting it."""
_exception_text = logging.Formatter().formatException
_UNPRINTED_FIELDS = {
    "logThreads": False,
    "logProcesses": False,
    "logMultiprocessing": False,
    "logAsyncioTasks": False,  # from 3.12
    "_srcfile": None,  # the caller's file and line: the logging HOWTO's "Optimization" switch
}
"""logging's switches for record fields ``LINE_FORMAT`` does not print, with their off value."""


def python_log_level(level: str) -> int:
    """The logging level of a NanoMQ log level name (trace, debug, info, warn, error, fatal)."""
    names = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
             "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL}  # fmt: skip
    return names[level]


class RecordQueue:
    """Records on their way to the listener thread.

    ``put_nowait`` is a ``deque.append``: it never wakes the listener (waking a thread is a
    system call, and the woken thread then competes with the loop for the interpreter). The
    listener polls every ``POLL_INTERVAL`` seconds instead; the stop sentinel (None) wakes it
    at once, so stopping writes everything without waiting for the next poll.
    """

    def __init__(self) -> None:
        self._records: collections.deque[logging.LogRecord | None] = collections.deque()
        self._stop = threading.Event()

    def put_nowait(self, record: logging.LogRecord | None) -> None:
        self._records.append(record)
        if record is None:
            self._stop.set()

    def get(self, block: bool = True) -> logging.LogRecord | None:
        """The oldest record, waiting for one (polling) if ``block``; queue.Empty if not."""
        while True:
            try:
                return self._records.popleft()
            except IndexError:
                if not block:
                    raise queue.Empty from None
                self._stop.wait(POLL_INTERVAL)


class DeferredQueueHandler(QueueHandler):
    """A queue handler that leaves formatting to the listener thread.

    ``QueueHandler.prepare`` formats the whole line (time stamp included) on the thread that
    logs; this one passes the record as it is when its arguments are immutable values, merges
    the message now when they are not (an object may change or not be thread-safe to print
    later), and turns a traceback into text now (its frames move on once the call returns).
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The record to enqueue: the same one unless it needs the changes above (then a copy)."""
        args = record.args
        immutable_args = not args or (isinstance(args, tuple) and all(isinstance(a, _IMMUTABLE) for a in args))
        if immutable_args and not record.exc_info:
            return record
        record = copy.copy(record)  # other handlers of the same logger still see the original
        if not immutable_args:
            record.msg = record.getMessage()
            record.args = None
        if record.exc_info:
            record.exc_text = record.exc_text or _exception_text(record.exc_info)
            record.exc_info = None
        return record


def direct_handlers(settings: Log) -> list[logging.Handler]:
    """The console (stderr) and/or file handlers of the ``log`` section, formatting lines."""
    handlers: list[logging.Handler] = []
    if "console" in settings.to:
        handlers.append(logging.StreamHandler())
    if "file" in settings.to:
        handlers.append(logging.FileHandler(Path(settings.dir) / settings.file))
    formatter = logging.Formatter(LINE_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    return handlers


@contextmanager
def lean_records() -> Iterator[None]:
    """Records made during the block skip the thread, process, task and caller fields.

    Looking them up is a large share of what a log call still costs its caller once the line
    is formatted elsewhere, and ``LINE_FORMAT`` prints none of them. The switches are restored
    on exit.
    """
    switches = {name: getattr(logging, name) for name in _UNPRINTED_FIELDS if hasattr(logging, name)}
    for name in switches:
        setattr(logging, name, _UNPRINTED_FIELDS[name])
    try:
        yield
    finally:
        for name, value in switches.items():
            setattr(logging, name, value)


@contextmanager
def log_output(settings: Log) -> Iterator[None]:
    """Root logging from the ``log`` section, through a queue, for the life of the block.

    On exit every queued record is written and the listener thread has ended; the handlers then
    hang on the root logger directly, so a record logged after that (by a thread still winding
    down, or at interpreter exit) is written rather than queued for nobody.
    """
    handlers = direct_handlers(settings)
    records = RecordQueue()
    listener = QueueListener(records, *handlers, respect_handler_level=True)
    root = logging.getLogger()
    _replace_handlers(root, [DeferredQueueHandler(records)])
    root.setLevel(python_log_level(settings.level))
    for name in ("uvicorn", "uvicorn.error", "httpx", "httpcore"):  # httpx: a line per http_auth request
        logging.getLogger(name).setLevel(max(logging.WARNING, python_log_level(settings.level)))
    listener.start()
    try:
        with lean_records():
            yield
    finally:
        _replace_handlers(root, handlers)
        listener.stop()


def _replace_handlers(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    """``logger``'s handlers become ``handlers`` (the old ones are removed, not closed)."""
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
