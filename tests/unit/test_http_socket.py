"""The admin API's listening socket."""

from __future__ import annotations

import socket

from broker.admin_http.server import bind_socket


def test_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    """The socket's proto is IPPROTO_TCP: asyncio then sets TCP_NODELAY and keep-alive answers are not delayed."""
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
