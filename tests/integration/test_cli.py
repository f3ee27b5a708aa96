"""The ``edgemq`` command as a user runs it: a subprocess, real clients, signals."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiomqtt
import httpx
import pytest

from broker.cli import SERVER_GC_THRESHOLDS
from tests.helpers import WAIT, next_message
from tests.integration.readme_runs import run_to_end

pytestmark = pytest.mark.anyio

READY = re.compile(r"edgemq ready: MQTT on mqtt://([\d.]+):(\d+), admin API on (http://\S+/api)")


@dataclass
class RunningCli:
    process: asyncio.subprocess.Process
    mqtt: tuple[str, int]
    api_url: str
    output: list[str]

    async def wait_for_line(self, pattern: str) -> str:
        """The next stderr line matching ``pattern`` (a regex), within the test wait limit."""
        assert self.process.stderr is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.process.stderr.readline()).decode()
                assert line, f"edgemq exited before logging {pattern!r}"
                self.output.append(line.rstrip())
                if re.search(pattern, line):
                    return line

    async def finish(self, sig: signal.Signals) -> int:
        """Send ``sig`` and return the exit code, collecting the rest of the output."""
        self.process.send_signal(sig)
        assert self.process.stderr is not None
        async with asyncio.timeout(WAIT * 2):
            rest = await self.process.stderr.read()
            self.output.extend(rest.decode().splitlines())
            return await self.process.wait()


def edgemq(*args: str) -> contextlib.AbstractAsyncContextManager[RunningCli]:
    """``python -m broker`` on free ports."""
    return edgemq_command("--mqtt-port", "0", "--http-port", "0", *args)


@contextlib.asynccontextmanager
async def edgemq_command(*args: str) -> AsyncIterator[RunningCli]:
    """``python -m broker ARGS``, once ready; killed on exit if it is still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output: list[str] = []
    try:
        assert process.stderr is not None
        async with asyncio.timeout(WAIT * 2):
            while not (match := READY.search(output[-1] if output else "")):
                line = await process.stderr.readline()
                assert line, f"edgemq exited before it was ready: {output}"
                output.append(line.decode().rstrip())
        yield RunningCli(process, (match[1], int(match[2])), match[3], output)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_mqtt_and_api_and_stops_cleanly(sig: signal.Signals) -> None:
    """edgemq routes MQTT, answers req 2, and exits 0 without a traceback on SIGTERM or SIGINT."""
    async with edgemq() as cli:
        host, port = cli.mqtt
        async with aiomqtt.Client(host, port, identifier="cli-sub") as sub:
            await sub.subscribe("cli/test")
            await sub.publish("cli/test", b"hello")
            assert (await next_message(sub)).payload == b"hello"
            async with httpx.AsyncClient(auth=("admin", "public")) as api:
                response = await api.post(f"{cli.api_url}/v1", json={"req": 2, "seq": 1})
        assert response.json()["data"] == {"client_size": 1, "message_in": 1, "message_out": 1, "message_drop": 0}
        assert await cli.finish(sig) == 0
    assert not any("Traceback" in line for line in cli.output), cli.output
    assert any("edgemq stopped" in line for line in cli.output)


async def test_cli_logs_connects_but_never_passwords() -> None:
    """One INFO line per connect and disconnect; the password appears nowhere, even at DEBUG."""
    async with edgemq("--log-level", "debug") as cli:
        host, port = cli.mqtt
        async with aiomqtt.Client(host, port, identifier="alice-1", username="alice", password="hunter2-secret"):
            pass
        await cli.wait_for_line("client disconnected: client_id=alice-1")
        assert await cli.finish(signal.SIGTERM) == 0
    text = "\n".join(cli.output)
    assert "hunter2-secret" not in text
    assert re.search(r"INFO edgemq.mqtt: client connected: client_id=alice-1 username=alice", text)
    assert re.search(r"INFO edgemq.mqtt: client disconnected: client_id=alice-1 reason=DISCONNECT", text)


async def test_cli_sets_server_gc_thresholds() -> None:
    """The edgemq command runs the garbage collector with server thresholds, not CPython's defaults."""
    async with edgemq("--log-level", "debug") as cli:
        assert await cli.finish(signal.SIGTERM) == 0
    assert f"garbage collector thresholds {SERVER_GC_THRESHOLDS}" in "\n".join(cli.output)


async def test_cli_warns_about_default_credentials_on_public_bind() -> None:
    """Binding the admin API beyond loopback with admin/public logs a warning."""
    async with edgemq("--http-host", "0.0.0.0") as cli:
        assert await cli.finish(signal.SIGTERM) == 0
    assert any("WARNING" in line and "default credentials" in line for line in cli.output)


async def test_cli_exits_nonzero_when_the_port_is_taken() -> None:
    """A port already in use is a one-line error and exit code 1, not a traceback."""
    async with edgemq() as first:
        taken = str(first.mqtt[1])
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broker", "--mqtt-port", taken, "--http-port", "0",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(WAIT * 2):
            _, err = await process.communicate()
        assert process.returncode == 1
        assert "Traceback" not in err.decode()
        assert "cannot start" in err.decode()
        assert await first.finish(signal.SIGTERM) == 0


async def test_cli_stops_on_req10_stop(tmp_path: Path) -> None:
    """`edgemq start --conf FILE`, then req 10 stop: the answer comes first, then exit code 0."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text('listeners.tcp.bind = "127.0.0.1:0"\nhttp_server { port = 0, password = "from-file" }\n')
    async with edgemq_command("start", "--conf", str(conf)) as cli:
        async with httpx.AsyncClient(auth=("admin", "from-file")) as api:
            response = await api.post(f"{cli.api_url}/v1", json={"req": 10, "seq": 2, "action": "stop"})
        assert response.json() == {"code": 0, "seq": 2, "rep": 10}
        assert cli.process.stderr is not None
        async with asyncio.timeout(WAIT * 2):
            await cli.process.stderr.read()
            assert await cli.process.wait() == 0


async def test_cli_refuses_an_invalid_file(tmp_path: Path) -> None:
    """An invalid configuration file: the errors with file and line, exit code 2, nothing started."""
    conf = tmp_path / "bad.conf"
    conf.write_text("mqtt {\n  colour = blue\n}\n")
    code, err = await run_to_end("start", "--conf", str(conf))
    assert code == 2
    assert f"{conf}:2: mqtt.colour: unknown key" in err


async def test_cli_prints_its_version() -> None:
    """`edgemq --version` prints `edgemq <installed version>` on stdout and exits 0, starting nothing."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "--version",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(WAIT * 2):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode() == f"edgemq {version('edgemq')}\n"


async def test_cli_refuses_a_missing_include(tmp_path: Path) -> None:
    """A password include with a typo: exit code 2 naming the file, and no broker admitting anyone."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(
        'listeners.tcp.bind = "127.0.0.1:0"\nhttp_server.port = 0\n'
        'auth {\n  allow_anonymous = false\n  password = { include "paswd.conf" }\n}\n'
    )
    code, err = await run_to_end("start", "--conf", str(conf))
    assert code == 2
    assert f'{conf}:5: include "paswd.conf": no such file' in err
    assert "edgemq ready" not in err


async def test_cli_writes_the_log_file_up_to_its_last_line(tmp_path: Path) -> None:
    """With log.to = [console, file], the file gets the connect line and, at exit, the last line logged."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(
        'listeners.tcp.bind = "127.0.0.1:0"\nhttp_server.port = 0\n'
        f'log {{ to = [console, file], dir = "{tmp_path}", file = "broker.log" }}\n'
    )
    async with edgemq_command("start", "--conf", str(conf)) as cli:
        host, port = cli.mqtt
        async with aiomqtt.Client(host, port, identifier="file-1"):
            pass
        await cli.wait_for_line("client disconnected: client_id=file-1")
        assert await cli.finish(signal.SIGTERM) == 0
    lines = (tmp_path / "broker.log").read_text().splitlines()
    assert any(re.search(r"INFO edgemq.mqtt: client connected: client_id=file-1 ", line) for line in lines), lines
    assert lines[-1].endswith("INFO edgemq: edgemq stopped"), lines[-3:]


async def test_cli_applies_a_log_level_changed_by_req12(tmp_path: Path) -> None:
    """A command started at info logs DEBUG lines once req 12 sets log.level = debug."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text('listeners.tcp.bind = "127.0.0.1:0"\nhttp_server.port = 0\nlog.level = info\n')
    async with edgemq_command("start", "--conf", str(conf)) as cli:
        async with httpx.AsyncClient(auth=("admin", "public")) as api:
            change = {"req": 12, "seq": 1, "data": {"log": {"level": "debug"}}}
            assert (await api.post(f"{cli.api_url}/v1", json=change)).json()["code"] == 0
            api.auth = httpx.BasicAuth("admin", "wrong")
            assert (await api.post(f"{cli.api_url}/v1", json={"req": 2})).status_code == 401
        await cli.wait_for_line(r"DEBUG edgemq.api: admin API: POST /api/v1 refused")
        assert await cli.finish(signal.SIGTERM) == 0
