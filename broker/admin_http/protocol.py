"""One admin API connection: uvicorn's HTTP/1.1 protocol with edgemq's limits.

What a slow or hostile client can hold is bounded by ``http_server``: at most
``max_connections`` connections (more are answered 503 and closed at once), a request must
arrive whole within ``request_timeout`` of its first byte, or, pipelined behind another, of
that one's answer (else 408 and the connection closes), an idle keep-alive connection closes
after ``keepalive_timeout``. Every answer is JSON, malformed HTTP too; upgrades (WebSocket,
h2c) are not served, the request is answered as plain HTTP.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from admin_api.codes import ResultCode
from broker.config.settings import HttpServer

__all__ = ["ConnectionGate", "GuardedHttpProtocol", "json_answer"]

log = logging.getLogger("edgemq.http")

_FULL_WARNING_INTERVAL = 60.0
"""Seconds between two warnings that the admin API refuses connections."""


def json_answer(status: int, code: ResultCode, message: str) -> bytes:
    """A whole HTTP/1.1 response with a JSON error body that closes the connection."""
    body = json.dumps({"code": int(code), "message": message}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ConnectionGate:
    """Decides whether a new connection may stay, and warns (at most once a minute) when not."""

    def __init__(self) -> None:
        self._last_warning = -_FULL_WARNING_INTERVAL

    def admits(self, open_connections: int, limits: HttpServer) -> bool:
        """Whether one more connection fits within ``limits.max_connections``."""
        if open_connections < limits.max_connections:
            return True
        now = time.monotonic()
        if now - self._last_warning >= _FULL_WARNING_INTERVAL:
            self._last_warning = now
            log.warning(
                "admin API: %d connections open, refusing new ones (http_server.max_connections)", open_connections
            )
        return False


class _ClientFaultLogger(logging.LoggerAdapter[logging.Logger]):
    """uvicorn's connection logger, with its warnings (malformed requests, the client's fault) at DEBUG."""

    @property
    def level(self) -> int:
        """The wrapped logger's level (uvicorn reads it)."""
        return self.logger.level

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Logs at DEBUG."""
        self.debug(msg, *args, **kwargs)


class GuardedHttpProtocol(H11Protocol):
    """An HTTP/1.1 connection of the admin API within ``limits`` (read when it is accepted)."""

    def __init__(self, config: Config, server_state: ServerState, limits: HttpServer, gate: ConnectionGate) -> None:
        super().__init__(config, server_state, app_state={})
        self.logger = _ClientFaultLogger(self.logger)  # type: ignore[assignment]
        self.timeout_keep_alive = limits.keepalive_timeout  # type: ignore[assignment]  # seconds, for call_later
        self._limits = limits
        self._gate = gate
        self._refused = False
        self._request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection and give its first request ``request_timeout``, or answer 503."""
        if not self._gate.admits(len(self.connections), self._limits):
            self._refused = True
            message = f"too many admin API connections (at most {self._limits.max_connections})"
            transport.write(json_answer(503, ResultCode.UNKNOWN_ERROR, message))
            transport.close()
            return
        super().connection_made(transport)
        self._request_deadline = self.loop.call_later(self._limits.request_timeout, self._request_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        if self._refused:
            return
        self._stop_request_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the request (see ``handle_events``)."""
        if self._refused:
            return
        super().data_received(data)

    def handle_events(self) -> None:
        """Process what is buffered, then time the request being received: from its first byte,
        or, pipelined behind another, from when that one is answered, until it is complete."""
        super().handle_events()
        self._follow_request()

    def send_400_response(self, msg: str) -> None:
        """Answer malformed HTTP with a JSON 400 and close."""
        log.debug("admin API: malformed HTTP request from %s", self.client)
        self._end(400, "malformed HTTP request")

    def shutdown(self) -> None:
        """Close now unless a whole request is being answered (then once it is answered)."""
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self._end()
        else:
            super().shutdown()

    def _should_upgrade(self) -> bool:
        return False

    def _follow_request(self) -> None:
        """Arm ``request_timeout`` (instead of the keep-alive timer) once a request has begun,
        stop it once none is being received; between requests the keep-alive timer runs alone."""
        receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()
        if not receiving:
            self._stop_request_deadline()
            return
        begun = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        if begun:
            self._unset_keepalive_if_required()
            if self._request_deadline is None:
                self._request_deadline = self.loop.call_later(self._limits.request_timeout, self._request_timed_out)

    def _stop_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_timed_out(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._end()  # nothing sent: no request to answer
            return
        message = f"request not complete within {self._limits.request_timeout:g}s"
        log.debug("admin API: %s from %s", message, self.client)
        self._end(408, message)

    def _end(self, status: int | None = None, message: str = "") -> None:
        """Close, first answering ``status`` unless a response to this request has begun; the
        app, if it has the request, sees the client gone and answers nothing more."""
        if status is not None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(json_answer(status, ResultCode.UNKNOWN_ERROR, message))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()
