"""The edgemq command's log output: records queued by the caller, written by a listener thread."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config.settings import Log
from broker.log_output import POLL_INTERVAL, RecordQueue, log_output
from tests.helpers import ephemeral_settings, running_broker

log = logging.getLogger("edgemq.test")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test; handlers it added closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    uvicorn_levels = {name: logging.getLogger(name).level for name in ("uvicorn", "uvicorn.error")}
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, uvicorn_level in uvicorn_levels.items():
            logging.getLogger(name).setLevel(uvicorn_level)


def file_settings(folder: Path) -> Log:
    return Log(to=["file"], dir=str(folder), file="edgemq.log")


@pytest.mark.usefixtures("root_logging")
def test_every_queued_record_is_written_when_the_block_ends(tmp_path: Path) -> None:
    """Lines logged just before the block ends are all in the file once it has ended."""
    with log_output(file_settings(tmp_path)):
        for number in range(2000):
            log.info("line %d", number)
    lines = (tmp_path / "edgemq.log").read_text().splitlines()
    assert len(lines) == 2000
    assert lines[-1].endswith("INFO edgemq.test: line 1999")


@pytest.mark.usefixtures("root_logging")
def test_a_line_from_another_thread_is_written(tmp_path: Path) -> None:
    """A record logged by a thread other than the one that set up the output is written too."""
    with log_output(file_settings(tmp_path)):
        worker = threading.Thread(target=log.warning, args=("from %s", "a worker thread"))
        worker.start()
        worker.join()
    assert "WARNING edgemq.test: from a worker thread" in (tmp_path / "edgemq.log").read_text()


@pytest.mark.usefixtures("root_logging")
def test_the_listener_thread_ends_with_the_block(tmp_path: Path) -> None:
    """The block runs one thread of its own (the listener), and none is left once it has ended."""
    before = set(threading.enumerate())
    with log_output(file_settings(tmp_path)):
        assert len(set(threading.enumerate()) - before) == 1
    assert set(threading.enumerate()) - before == set()


@pytest.mark.usefixtures("root_logging")
def test_a_record_after_the_block_is_still_written(tmp_path: Path) -> None:
    """A record logged after the block (a thread winding down) goes straight to the file."""
    with log_output(file_settings(tmp_path)):
        pass
    log.info("after the listener stopped")
    assert "after the listener stopped" in (tmp_path / "edgemq.log").read_text()


@pytest.mark.usefixtures("root_logging")
def test_mutable_arguments_are_printed_as_they_were_at_the_call(tmp_path: Path) -> None:
    """An argument that changes after the log call is printed with its value at the call."""
    topics = ["a/b"]
    with log_output(file_settings(tmp_path)):
        log.info("subscribed to %s", topics)
        topics.append("changed/later")
    assert "subscribed to ['a/b']\n" in (tmp_path / "edgemq.log").read_text()


@pytest.mark.usefixtures("root_logging")
def test_a_logged_exception_keeps_its_traceback(tmp_path: Path) -> None:
    """log.exception writes the message and the traceback of the exception being handled."""
    with log_output(file_settings(tmp_path)):
        try:
            raise ValueError("the cause")
        except ValueError:
            log.exception("failed")
    text = (tmp_path / "edgemq.log").read_text()
    assert "ERROR edgemq.test: failed\nTraceback" in text
    assert "ValueError: the cause" in text


@pytest.mark.anyio
async def test_an_embedded_broker_leaves_root_logging_alone() -> None:
    """Starting and stopping an EdgeBroker adds no handler to the root logger and keeps its level."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    async with running_broker(ephemeral_settings()):
        assert (root.handlers, root.level) == (handlers, level)
    assert (root.handlers, root.level) == (handlers, level)


@pytest.mark.usefixtures("root_logging")
def test_records_skip_unprinted_fields_only_during_the_block(tmp_path: Path) -> None:
    """Inside the block records carry no thread, process or caller fields (the line prints none); after it they do."""
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def keep(*args: object, **kwargs: object) -> logging.LogRecord:
        made.append(factory(*args, **kwargs))
        return made[-1]

    logging.setLogRecordFactory(keep)
    try:
        with log_output(file_settings(tmp_path)):
            log.info("inside")
        log.info("after")
    finally:
        logging.setLogRecordFactory(factory)
    inside, after = made
    assert (inside.threadName, inside.processName, inside.process) == (None, None, None)
    assert (inside.funcName, inside.lineno) == ("(unknown function)", 0)
    assert (after.threadName, after.process) == (threading.current_thread().name, os.getpid())
    assert after.funcName == "test_records_skip_unprinted_fields_only_during_the_block"


@pytest.mark.usefixtures("root_logging")
def test_a_line_is_written_while_the_command_runs(tmp_path: Path) -> None:
    """The listener finds a queued line on its next look, without the block ending."""
    written = tmp_path / "edgemq.log"
    with log_output(file_settings(tmp_path)):
        log.info("while running")
        deadline = time.monotonic() + 5.0
        while "while running" not in (written.read_text() if written.exists() else ""):
            assert time.monotonic() < deadline, "the line was not written within 5 s"
            time.sleep(POLL_INTERVAL / 5)  # polling a file: no event to wait on


def test_record_queue_hands_out_records_in_order_and_stops_at_the_sentinel() -> None:
    """Records come out in the order they went in; the sentinel wakes a blocked reader at once."""
    records = RecordQueue()
    with pytest.raises(queue.Empty):
        records.get(block=False)
    first, second = (logging.makeLogRecord({"msg": m}) for m in ("a", "b"))
    records.put_nowait(first)
    records.put_nowait(second)
    assert [records.get(), records.get()] == [first, second]
    reader = threading.Thread(target=records.get)
    reader.start()
    records.put_nowait(None)
    reader.join(5.0)
    assert not reader.is_alive()
