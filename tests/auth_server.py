"""A real HTTP auth server for ``auth.http_auth`` tests: Starlette served by uvicorn on a free
loopback port, in the test's event loop, answering as the test tells it and recording each request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["AuthServer", "auth_server"]


@dataclass
class AuthServer:
    """What the server answers (status, body) per path and user, and what it was asked."""

    url: str = ""
    answers: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    """(path, user name) -> (status, body); anything else gets 200 "ok"."""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(path, content type, parameters) of every request, in order."""
    hang: bool = False
    """Never answer (until the server stops)."""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            params = dict(request.query_params)
        elif "json" in request.headers.get("content-type", ""):
            params = await request.json()
        else:
            params = dict(parse_qsl((await request.body()).decode()))
        self.requests.append((request.url.path, request.headers.get("content-type", ""), params))
        if self.hang:
            await self.released.wait()
        status, body = self.answers.get((request.url.path, params.get("username", "")), (200, "ok"))
        return PlainTextResponse(body, status_code=status)


@contextlib.asynccontextmanager
async def auth_server() -> AsyncIterator[AuthServer]:
    """The server, listening until the block ends (its ``url`` has no trailing slash)."""
    served = AuthServer()
    app = Starlette(routes=[Route("/{path:path}", served.handle, methods=["GET", "POST", "PUT"])])
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()  # connections queue from here on: no wait for uvicorn to be ready
    served.url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield served
    finally:
        served.released.set()
        server.should_exit = True
        await task
        listening.close()
