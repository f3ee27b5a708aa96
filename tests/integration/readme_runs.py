"""README.md's lines run as written (for test_readme.py): the edgemq command, mosquitto clients and curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import WAIT
from tests.integration.readme_lines import ROOT, Line, option

README_API = "http://127.0.0.1:8081"  # the admin API address the README's curl lines use
README_MQTT_HOST = "127.0.0.1"  # the -h of its mosquitto lines (port 1883 by default)
READY = re.compile(r"edgemq (?:ready|restarted): MQTT on mqtt://([\d.]+):(\d+)\b.*, admin API on (http://\S+)/api\b")
# answer fields whose value changes by itself: only their type must match what the README shows
VOLATILE = frozenset({"cpuinfo", "memory", "datetime", "uptime", "version", "connected_at", "port", "ip_address"})


def needs(*tools: str) -> None:
    """Skip the test when a client the README's lines call is not installed."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the README's curl and mosquitto lines cannot run here")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, enough for the README's examples."""
    words, levels = topic_filter.split("/"), topic.split("/")
    for index, word in enumerate(words):
        if word == "#":
            return True
        if index >= len(levels) or word not in ("+", levels[index]):
            return False
    return len(words) == len(levels)


def assert_shown(shown: Any, answer: Any, where: str) -> None:
    """``answer`` has the README's shape (same keys in the same order) and values, apart from VOLATILE ones."""
    if isinstance(shown, dict):
        assert isinstance(answer, dict), f"{where}: {answer!r} is not an object"
        assert list(answer) == list(shown), f"{where}: keys {list(answer)}, the README shows {list(shown)}"
        for key, value in shown.items():
            if key in VOLATILE:
                assert type(answer[key]) is type(value), f"{where}.{key}: {answer[key]!r} vs {value!r}"
            else:
                assert_shown(value, answer[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(answer, list), f"{where}: {answer!r} is not a list"
        assert len(answer) == len(shown), f"{where}: {answer!r}, the README shows {shown!r}"
        for index, (item, got) in enumerate(zip(shown, answer, strict=True)):
            assert_shown(item, got, f"{where}[{index}]")
    else:
        assert type(answer) is type(shown), f"{where}: {answer!r}, the README shows {shown!r}"
        assert answer == shown, f"{where}: {answer!r}, the README shows {shown!r}"


class Output:
    """The lines a process writes to one stream, read as they come; waits for a line by pattern."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._closed = False
        self._grown = asyncio.Condition()
        self.reader = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while raw := await stream.readline():
            async with self._grown:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._grown.notify_all()
        async with self._grown:
            self._closed = True
            self._grown.notify_all()

    async def wait_for(self, pattern: str, start: int = 0) -> re.Match[str]:
        """The first line from index ``start`` on that matches ``pattern``, within the test wait limit."""
        try:
            async with asyncio.timeout(WAIT), self._grown:
                while True:
                    for line in self.lines[start:]:
                        if match := re.search(pattern, line):
                            return match
                    start = len(self.lines)
                    assert not self._closed, f"the stream ended before a line matching {pattern!r}: {self.lines}"
                    await self._grown.wait()
        except TimeoutError:
            raise AssertionError(f"no line matching {pattern!r} within {WAIT}s: {self.lines[-20:]}") from None


async def stop(process: asyncio.subprocess.Process, output: Output | None = None) -> None:
    """Kill ``process`` if it still runs and collect what it wrote."""
    if process.returncode is None:
        process.kill()
    async with asyncio.timeout(WAIT):
        await process.wait()
        if output is not None:
            await output.reader


def edgemq_env() -> dict[str, str]:
    """The environment without EDGEMQ_* settings, so only the README's line configures the broker."""
    return {name: value for name, value in os.environ.items() if not name.startswith("EDGEMQ_")}


async def spawn(
    *args: str, env: dict[str, str], cwd: Path | None = None, preexec_fn: Callable[[], None] | None = None
) -> tuple[asyncio.subprocess.Process, Output]:
    """``python -m broker ARGS`` (the ``edgemq`` command) started, and its log (stderr) being read."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, cwd=cwd, env=env, preexec_fn=preexec_fn,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    return process, Output(process.stderr)


async def run_to_end(*args: str) -> tuple[int, str]:
    """(exit code, stderr) of ``python -m broker ARGS`` expected to stop by itself; killed if it runs on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, env=edgemq_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WAIT * 2):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:  # it started: stop it
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode()


@dataclass
class Edgemq:
    """A running ``edgemq`` command and the addresses it logged."""

    process: asyncio.subprocess.Process
    log: Output
    mqtt_port: int = 0
    api: str = ""  # http://host:port

    def moved_to(self, match: re.Match[str]) -> None:
        self.mqtt_port, self.api = int(match[2]), match[3]

    async def finish(self) -> int:
        """SIGTERM, then the exit code; the log must hold no traceback and no error."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT * 2):
            code = await self.process.wait()
            await self.log.reader
        bad = [line for line in self.log.lines if "Traceback" in line or " ERROR " in line]
        assert not bad, bad
        return code


@contextlib.asynccontextmanager
async def edgemq(*args: str) -> AsyncIterator[Edgemq]:
    """``python -m broker ARGS`` (the ``edgemq`` command) in the repository, once it logged its ready line.
    Its store (the shipped config persists) is in a temporary directory, not in the checkout."""
    with tempfile.TemporaryDirectory() as data:
        env = {**edgemq_env(), "EDGEMQ_PERSISTENCE__PATH": str(Path(data) / "edgemq.db")}
        process, log = await spawn(*args, env=env, cwd=ROOT)
        try:
            running = Edgemq(process, log)
            running.moved_to(await log.wait_for(READY.pattern))
            yield running
        finally:
            await stop(process, log)


@dataclass
class Subscriber:
    """A background mosquitto_sub and its output (with -d, so SUBACK shows)."""

    process: asyncio.subprocess.Process
    output: Output
    filters: list[str]


@dataclass
class SectionRun:
    """Runs a section's curl and mosquitto lines in order against one broker."""

    broker: Edgemq
    subscribers: list[Subscriber] = field(default_factory=list)

    async def run(self, line: Line) -> None:
        if line.argv[0] == "curl":
            await self.curl(line)
        elif line.argv[0] == "mosquitto_sub":
            await self.mosquitto_sub(line)
        else:
            await self.mosquitto_pub(line)

    def mqtt_argv(self, line: Line) -> list[str]:
        """The mosquitto line with -p set to the bound port (the README uses the default 1883)."""
        argv = [word for word in line.argv if word != "&"]
        assert option(argv, "-h") == README_MQTT_HOST, f"{line}: -h is not {README_MQTT_HOST}"
        assert "-p" not in argv, f"{line}: a port other than the default needs handling here"
        return [*argv, "-p", str(self.broker.mqtt_port)]

    async def mosquitto_sub(self, line: Line) -> None:
        """Started in the background; returns once its SUBACK arrived."""
        argv = self.mqtt_argv(line)
        filters = [argv[i + 1] for i, word in enumerate(argv) if word == "-t"]
        process = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", *argv, "-d",  # line-buffered: mosquitto_sub buffers its output on a pipe
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        subscriber = Subscriber(process, Output(process.stdout), filters)
        self.subscribers.append(subscriber)
        await subscriber.output.wait_for(r"received SUBACK")

    async def mosquitto_pub(self, line: Line) -> None:
        """Exit 0; every matching background subscriber prints the payload; the publisher's session is gone."""
        argv = self.mqtt_argv(line)
        topic, payload = option(argv, "-t"), option(argv, "-m")
        log_mark = len(self.broker.log.lines)
        marks = [len(s.output.lines) for s in self.subscribers]
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        async with asyncio.timeout(WAIT):
            assert await process.wait() == 0, f"{line}: exit code {process.returncode}"
        for subscriber, mark in zip(self.subscribers, marks, strict=True):
            if any(topic_matches(f, topic) for f in subscriber.filters):
                await subscriber.output.wait_for(f"^{re.escape(payload)}$", mark)
        gone = await self.broker.log.wait_for(r"client disconnected: client_id=(\S+) reason=DISCONNECT", log_mark)
        await self.wait_until_forgotten(gone[1])

    async def wait_until_forgotten(self, client_id: str) -> None:
        """The broker logs a disconnect before it drops the clean session: wait for the drop."""
        async with (
            httpx.AsyncClient(base_url=f"{self.broker.api}/api/v4", auth=("admin", "public"), timeout=WAIT) as api,
            asyncio.timeout(WAIT),
        ):
            while (await api.get(f"/clients/{client_id}")).json()["data"]:
                pass

    async def curl(self, line: Line) -> None:
        """2xx; JSON with code 0 (equal to the answer shown under it) or the Prometheus text."""
        urls = [word for word in line.argv if word.startswith(f"{README_API}/")]
        assert len(urls) == 1, f"{line}: expected one URL on {README_API}"
        argv = [word.replace(README_API, self.broker.api, 1) if word in urls else word for word in line.argv]
        log_mark = len(self.broker.log.lines)
        process = await asyncio.create_subprocess_exec(
            *argv, "--silent", "--show-error", "--max-time", str(WAIT), "--write-out", "\n%{http_code} %{content_type}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(WAIT * 2):
            out, err = await process.communicate()
        assert process.returncode == 0, f"{line}: curl failed: {err.decode()}"
        body, _, trailer = out.decode().rpartition("\n")
        status, _, content_type = trailer.partition(" ")
        assert status.startswith("2"), f"{line}: HTTP {status} {body}"
        if content_type.startswith("application/json"):
            answer = json.loads(body)
            assert answer["code"] == 0, f"{line}: {body}"
            if line.answer is not None:
                assert_shown(line.answer, answer, f"{line}\n  answer")
        else:
            assert line.answer is None, f"{line}: the README shows JSON, the answer is {content_type}"
            assert content_type.startswith("text/plain"), f"{line}: {content_type}"  # only /prometheus is not JSON
            assert "nanomq_connections_count" in body, f"{line}: {body}"
        if "/ctrl/restart" in urls[0] or '"action":"restart"' in line.text.replace(" ", ""):
            self.broker.moved_to(await self.broker.log.wait_for(READY.pattern, log_mark))

    async def close(self) -> None:
        for subscriber in self.subscribers:
            await stop(subscriber.process, subscriber.output)
