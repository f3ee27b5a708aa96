"""A real mosquitto for tests: the upstream broker of a bridge, or a reference broker.

The tests skip when mosquitto is not installed (scripts/test installs it from Debian's packages).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import trustme

from tests.helpers import WAIT

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, so that while an upstream is stopped
    no outgoing connection is given its port and its restart can bind it again."""
    low = _ephemeral_range_start()
    candidates = random.sample(range(10000, low), 50) if low > 10050 else []
    for port in [*candidates, 0]:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise AssertionError("unreachable: port 0 always binds")


class Upstream:
    """A mosquitto process on a fixed loopback port that a test can stop and start again."""

    def __init__(self, directory: Path, port: int, config: Sequence[str], tls: bool) -> None:
        self.address: tuple[str, int] = ("127.0.0.1", port)
        self._directory = directory
        self._config = directory / "mosquitto.conf"
        self._config.write_text("\n".join([f"listener {port} 127.0.0.1", *config]) + "\n")
        self._tls = tls
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log: collections.deque[str] = collections.deque(maxlen=200)

    @property
    def ca_path(self) -> Path:
        """PEM file of the CA that signed the server certificate (tls=True)."""
        return self._tls_file("ca.pem")

    @property
    def wrong_ca_path(self) -> Path:
        """PEM file of another CA, which did not sign the server certificate (tls=True)."""
        return self._tls_file("wrong-ca.pem")

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def log(self) -> str:
        """mosquitto's recent log lines (connections, errors), for failure messages."""
        return "".join(self._log)

    def _tls_file(self, name: str) -> Path:
        if not self._tls:
            raise RuntimeError("the CA files exist only with mosquitto_upstream(tls=True)")
        return self._directory / name

    async def start(self) -> None:
        """Start mosquitto and return once it listens."""
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        assert MOSQUITTO is not None
        process = await asyncio.create_subprocess_exec(
            MOSQUITTO, "-c", str(self._config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        self._process = process
        assert process.stderr is not None
        try:
            # mosquitto logs "mosquitto version X running" once its listeners are open
            async with asyncio.timeout(WAIT):
                while b" running" not in (line := await process.stderr.readline()):
                    if not line:
                        raise RuntimeError(f"mosquitto exited before it was running:\n{self.log}")
                    self._log.append(line.decode(errors="replace"))
        except BaseException:
            await self.stop()
            raise
        self._reader = asyncio.create_task(self._keep_log(process.stderr))

    async def _keep_log(self, stderr: asyncio.StreamReader) -> None:
        """Read the log to the end, so its pipe never fills up and blocks mosquitto."""
        while line := await stderr.readline():
            self._log.append(line.decode(errors="replace"))

    async def stop(self) -> None:
        """Kill mosquitto and reap it; the kernel closes its connections (FIN, as at any exit).

        SIGKILL, not SIGTERM: mosquitto 2.0 loses a SIGTERM that comes just after it logged that it
        runs (the flag it sets is reset as the main loop starts), and keeps no state worth a clean exit.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()
        if self._reader is not None:
            await self._reader
            self._reader = None


def _write_tls_files(directory: Path) -> list[str]:
    """Certificates for a TLS listener on 127.0.0.1/localhost, and their config lines."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(directory / "wrong-ca.pem"))
    with (directory / "server.pem").open("wb") as chain:
        for blob in server.cert_chain_pems:
            chain.write(blob.bytes())
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    return [
        f"cafile {directory / 'ca.pem'}",
        f"certfile {directory / 'server.pem'}",
        f"keyfile {directory / 'server.key'}",
    ]


async def _write_password_file(path: Path, users: dict[str, str]) -> None:
    """A mosquitto password file: written in plain text, then hashed in place by mosquitto_passwd -U."""
    if MOSQUITTO_PASSWD is None:
        pytest.skip("mosquitto_passwd is not installed")
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    process = await asyncio.create_subprocess_exec(
        MOSQUITTO_PASSWD, "-U", str(path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, f"mosquitto_passwd -U failed: {output.decode(errors='replace')}"


@contextlib.asynccontextmanager
async def mosquitto_upstream(
    tmp_path: Path,
    *,
    tls: bool = False,
    users: dict[str, str] | None = None,
    config: Sequence[str] = (),
) -> AsyncIterator[Upstream]:
    """A running mosquitto on a free loopback port, stopped and reaped when the block ends.

    ``tls``: the listener speaks TLS with a server certificate for 127.0.0.1 and localhost.
    ``users``: only these user names and passwords may connect (else anyone may).
    ``config``: more mosquitto.conf lines, e.g. ``["max_packet_size 1000"]``.
    """
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    directory = tmp_path / f"mosquitto-{port}"
    directory.mkdir()
    # as root mosquitto would drop to the 'mosquitto' user, which cannot read the files under tmp_path
    lines = ["user root", "persistence false", "log_dest stderr"]
    lines += [f"log_type {kind}" for kind in ("error", "warning", "notice", "information")]
    if tls:
        lines += _write_tls_files(directory)
    if users is not None:
        await _write_password_file(directory / "passwords", users)
        lines += ["allow_anonymous false", f"password_file {directory / 'passwords'}"]
    else:
        lines += ["allow_anonymous true"]
    upstream = Upstream(directory, port, [*lines, *config], tls)
    try:
        await upstream.start()
        yield upstream
    finally:
        await upstream.stop()
