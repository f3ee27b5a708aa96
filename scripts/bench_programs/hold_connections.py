"""Benchmark program (scripts/bench.py, listing): hold ``count`` MQTT connections open.

Usage: hold_connections.py HOST PORT COUNT. Connects clients bench-00000, bench-00001, ... one
after another, prints "connected" once every CONNACK arrived, then holds the connections until
its standard input closes.
"""

from __future__ import annotations

import socket
import sys

from broker.mqtt.encoding import encode_connect


def main(argv: list[str]) -> None:
    host, port, count = argv[0], int(argv[1]), int(argv[2])
    held: list[socket.socket] = []
    for n in range(count):
        sock = socket.create_connection((host, port))
        sock.sendall(encode_connect(f"bench-{n:05d}"))
        assert sock.recv(4)[:2] == b"\x20\x02"
        held.append(sock)
    print("connected", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
