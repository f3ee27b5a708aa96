"""README.md's command lines, run as written against the real ``edgemq`` command, so the README cannot drift.

Every line of a ```sh block is either a command this module knows how to run or the JSON answer
shown under the command above it; any other line fails ``test_every_readme_sh_line_is_covered``.
Addresses are moved to the ports the broker really bound (it binds port 0 and logs them).

- ``curl`` and ``mosquitto_sub``/``mosquitto_pub`` lines run, section by section, against one
  broker per section, in README order, after the quick start's lines (the examples continue
  from it). Each curl answer must be HTTP 2xx JSON with code 0 (or the Prometheus text), and
  equal to the answer the README shows under it, apart from values that change by themselves
  (``VOLATILE``).
- ``edgemq ...`` lines run with ``python -m broker`` (what the console script calls).
- ``.venv/bin/python scripts/bench.py ...`` lines run the benchmark's argument handling with
  every scenario stubbed out (``tests/bench`` runs the scenarios themselves).
- ``./scripts/run`` and ``./scripts/test`` install into .venv: they must exist and be executable.
- Lines matching ``NOT_RUN`` (creating a virtualenv, ``pip install``) are not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from admin_api.codes import ResultCode
from broker.config.source import ConfigSource
from tests.helpers import WAIT

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

README_API = "http://127.0.0.1:8081"  # the admin API address the README's curl lines use
README_MQTT_HOST = "127.0.0.1"  # the -h of its mosquitto lines (port 1883 by default)
QUICK_START = "Quick start"
INSTALL_SCRIPT = re.compile(r"\./scripts/(run|test)")  # they install into .venv: checked, not run
# lines that install or need placeholders filled in: not run (matched against the words of the line)
NOT_RUN = [
    re.compile(r"python3 -m venv \.venv && \. \.venv/bin/activate"),
    re.compile(r"pip install \S.*"),
]
BENCH = [".venv/bin/python", "scripts/bench.py"]
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1"}
READY = re.compile(r"edgemq (?:ready|restarted): MQTT on mqtt://([\d.]+):(\d+)\b.*, admin API on (http://\S+)/api\b")
# answer fields whose value changes by itself: only their type must match what the README shows
VOLATILE = frozenset({"cpuinfo", "memory", "datetime", "uptime", "version", "connected_at", "port", "ip_address"})


# --- reading the README ---------------------------------------------------------------------------


@dataclass
class Line:
    """One command of a ```sh block, with the answer the README shows under it (if any)."""

    number: int
    section: str
    text: str
    argv: list[str]
    answer: Any = None

    @property
    def kind(self) -> str | None:
        """How the tests run it, or None when they cannot."""
        argv = self.argv
        if any(pattern.fullmatch(" ".join(argv)) for pattern in NOT_RUN):
            return "not run"
        if SHELL_OPERATORS & set(argv) or "&" in argv[:-1]:
            return None
        if argv[-1] == "&":
            return "mqtt" if argv[0] == "mosquitto_sub" else None
        if len(argv) == 1 and INSTALL_SCRIPT.fullmatch(argv[0]):
            return "install"
        if argv[0] == "curl":
            return "curl"
        if argv[0] == "mosquitto_pub":
            return "mqtt"
        if argv[0] == "edgemq":
            return "edgemq"
        if argv[:2] == BENCH:
            return "bench"
        return None

    def __str__(self) -> str:
        return f"README.md:{self.number}: {self.text}"


def read_readme(text: str) -> tuple[list[Line], list[str]]:
    """The commands of every ```sh block, and the lines that are neither a command nor an answer."""
    lines: list[Line] = []
    problems: list[str] = []
    section, fence, pending, start = "", None, "", 0
    block: list[Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if fence is None:
            if raw.startswith("## "):
                section = raw[3:].strip()
            elif raw.startswith("```"):
                fence, block = raw.strip(), []
            continue
        if raw.startswith("```"):
            if pending:
                problems.append(f"README.md:{start}: continued past the end of its block: {pending}")
            fence, pending = None, ""
            continue
        if fence != "```sh" or not raw.strip():
            continue
        if not pending:
            start = number
        joined = f"{pending} {raw.strip()}".strip()
        if joined.endswith("\\"):
            pending = joined[:-1].strip()
            continue
        pending = ""
        if joined.startswith(("{", "[")):
            previous = block[-1] if block else None
            try:
                answer = json.loads(joined)
            except ValueError:
                problems.append(f"README.md:{start}: an answer that is not JSON: {joined}")
                continue
            if previous is None or previous.answer is not None:
                problems.append(f"README.md:{start}: an answer under no command: {joined}")
                continue
            previous.answer = answer
            continue
        try:
            argv = shlex.split(joined, comments=True)
        except ValueError:
            problems.append(f"README.md:{start}: not a shell command: {joined}")
            continue
        if argv:
            line = Line(start, section, joined, argv)
            block.append(line)
            lines.append(line)
            if line.kind is None:
                problems.append(f"{line} (no test knows how to run this line)")
    return lines, problems


LINES, PROBLEMS = read_readme(README.read_text(encoding="utf-8"))


def lines_of(kind: str) -> list[Line]:
    return [line for line in LINES if line.kind == kind]


def line_params(kind: str) -> list[Any]:
    return [pytest.param(line, id=f"line{line.number}") for line in lines_of(kind)]


API_SECTIONS = list(dict.fromkeys(line.section for line in LINES if line.kind in ("curl", "mqtt")))


def needs(*tools: str) -> None:
    """Skip the test when a client the README's lines call is not installed."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the README's curl and mosquitto lines cannot run here")


def option(argv: list[str], name: str) -> str:
    """The value after ``name`` in ``argv``."""
    assert name in argv, f"{name} missing in {argv}"
    return argv[argv.index(name) + 1]


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


# --- processes ------------------------------------------------------------------------------------


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
    """``python -m broker ARGS`` (the ``edgemq`` command) in the repository, once it logged its ready line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, cwd=ROOT, env=edgemq_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    log = Output(process.stderr)
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


# --- the tests ------------------------------------------------------------------------------------


def test_every_readme_sh_line_is_covered() -> None:
    """Every line of README.md's sh blocks is a command these tests run, or the answer under one."""
    assert not PROBLEMS, "README lines no test runs (teach tests/integration/test_readme.py):\n" + "\n".join(PROBLEMS)
    for kind in ("install", "curl", "mqtt", "edgemq", "bench"):
        assert lines_of(kind), f"no {kind} line found: has the README's sh block syntax changed?"


@pytest.mark.parametrize("line", line_params("install"))
def test_readme_install_line_is_an_executable_script(line: Line) -> None:
    """./scripts/run and ./scripts/test (not run: they install) exist and are executable."""
    script = ROOT / line.argv[0]
    assert script.is_file(), f"{line}: no such script"
    assert os.access(script, os.X_OK), f"{line}: not executable"


@pytest.mark.anyio
@pytest.mark.parametrize("section", API_SECTIONS)
async def test_readme_section_runs_and_answers_as_shown(section: str) -> None:
    """A section's curl and mosquitto lines run in order after the quick start's, each answering as shown."""
    lines = [line for line in LINES if line.kind in ("curl", "mqtt") and line.section in (QUICK_START, section)]
    needs("curl", *sorted({line.argv[0] for line in lines if line.kind == "mqtt"}), "stdbuf")
    async with edgemq("--mqtt-port", "0", "--http-port", "0") as broker:
        run = SectionRun(broker)
        try:
            for line in lines:
                await run.run(line)
        finally:
            await run.close()
        assert await broker.finish() == 0


@pytest.mark.anyio
@pytest.mark.parametrize("line", line_params("edgemq"))
async def test_readme_edgemq_line_runs(line: Line) -> None:
    """An `edgemq ...` line runs as the real command: start serves and stops with 0, the others exit 0."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgemq"] == "broker.cli:main"  # what python -m broker runs
    args = line.argv[1:]
    command = args[0] if args and not args[0].startswith("-") else "start"
    if args == ["--version"]:
        command = "--version"
    if command == "start":
        if "--conf" in args:
            listeners = dict(ConfigSource(path=ROOT / option(args, "--conf")).load().listeners.configured())
            assert set(listeners) == {"tcp"}, f"{line}: move the {set(listeners) - {'tcp'}} listeners to free ports"
        async with edgemq(*args, "--mqtt-port", "0", "--http-port", "0") as broker:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                assert (await client.get(f"{broker.api}/readyz")).status_code == 200
            assert await broker.finish() == 0
        return
    stdin = b"readme-secret\n" if command == "hash-password" else b""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, cwd=ROOT, env=edgemq_env(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WAIT * 2):
            out, err = await process.communicate(stdin)
    finally:
        await stop(process)
    assert process.returncode == 0, f"{line}: exit code {process.returncode}: {err.decode()}"
    if command == "check-config":
        assert out.decode().startswith(f"{args[1]}: ok ("), f"{line}: {out.decode()}"
    elif command == "hash-password":
        assert out.decode().startswith("$argon2id$"), f"{line}: {out.decode()}"
    elif command == "--version":
        assert re.fullmatch(r"edgemq \S+\n", out.decode()), f"{line}: {out.decode()}"
    else:
        pytest.fail(f"{line}: no check for `edgemq {command}` yet")


BENCH_STUB = """
import importlib.util, sys
sys.path.insert(0, "scripts")
spec = importlib.util.spec_from_file_location("bench", "scripts/bench.py")
bench = sys.modules["bench"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
bench.SCENARIOS = {name: (lambda args, name=name: print(name) or []) for name in bench.SCENARIOS}
raise SystemExit(bench.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("line", line_params("bench"))
def test_readme_bench_line_parses(line: Line) -> None:
    """scripts/bench.py accepts the line's flags and picks its scenarios (each stubbed: tests/bench runs them)."""
    completed = subprocess.run(
        [sys.executable, "-c", BENCH_STUB, *line.argv[2:]],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT * 4, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"{line}: {completed.stderr}"
    chosen = [option(line.argv[i:], "--scenario") for i, word in enumerate(line.argv) if word == "--scenario"]
    ran = completed.stdout.split()
    assert ran == (chosen or sorted(ran)), f"{line}: ran {ran}"
    assert chosen or len(ran) > 1, f"{line}: ran {ran}, not every scenario"


def test_readme_result_code_table_lists_every_code() -> None:
    """The README's result code table has one row per code of admin_api/codes.py."""
    section = README.read_text(encoding="utf-8").split("\n## Admin API result codes\n", 1)[1].split("\n## ", 1)[0]
    rows = [int(match[1]) for match in re.finditer(r"^\| (\d+) \|", section, re.MULTILINE)]
    assert rows == sorted(int(code) for code in ResultCode)


def test_readme_links_point_to_files_in_the_repository() -> None:
    """Every relative link of README.md names a file that ships with the repository."""
    targets = re.findall(r"\]\(([^)#\s]+)\)", README.read_text(encoding="utf-8"))
    local = [target for target in targets if "://" not in target]
    assert local, "no relative link found"
    missing = [t for t in local if not ((ROOT / t).resolve().is_relative_to(ROOT) and (ROOT / t).exists())]
    assert not missing, f"README links to files the repository does not hold: {missing}"
