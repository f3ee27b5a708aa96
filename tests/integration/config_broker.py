"""A broker started from a configuration file, and the admin API requests the config tests send."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from broker import ConfigSource, EdgeBroker
from tests.helpers import WAIT

CONF = """# my broker - comments must survive API changes
listeners.tcp { bind = "127.0.0.1:0" }   # any free port
http_server {
    port = 0
    password = "first-secret"
}
auth { allow_anonymous = true }
"""


@contextlib.asynccontextmanager
async def broker_from_file(
    tmp_path: Path, text: str = CONF
) -> AsyncIterator[tuple[EdgeBroker, httpx.AsyncClient, Path]]:
    """A broker started from ``text`` written to ``tmp_path / "edgemq.conf"``, an admin client and that path."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(text)
    broker = EdgeBroker(config=ConfigSource(conf), history=100)
    async with broker, httpx.AsyncClient(auth=broker.admin_auth, timeout=WAIT) as api:
        api.base_url = httpx.URL(broker.api_url)
        yield broker, api, conf


async def post(api: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    """POST ``body`` to /v1 with seq 1."""
    return await api.post("/v1", json={"seq": 1, **body})


def free_port() -> int:
    """A port no socket holds at the moment (the broker binds it later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def refused(response: httpx.Response, key: str) -> str:
    """The message of a 400/108 that names ``key``."""
    answer = response.json()
    assert (response.status_code, answer["code"]) == (400, 108), answer
    assert key in answer["message"], answer
    return str(answer["message"])
