"""Load generator for scripts/bench.py: pre-encoded MQTT 3.1.1 packets over raw sockets.

Runs in worker processes (multiprocessing), so the generator does not share a CPU-bound
interpreter with the broker under test. Every payload carries (publisher, sequence, send time),
so subscribers count lost, duplicated and out-of-order messages and measure latency.
Standard library plus edgemq's packet encoder (broker/mqtt/encoding.py).
"""

from __future__ import annotations

import selectors
import socket
import struct
import time
from dataclasses import dataclass, field

from broker.mqtt.encoding import (
    DISCONNECT,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_publish_v5,
    encode_subscribe,
    encode_subscribe_v5,
)
from broker.mqtt.properties import Properties, decode_varint

HEADER = struct.Struct("!IIq")  # publisher number, sequence, send time (ns)
CONNECT_WINDOW = 8  # CONNECT handshakes in flight per connecting process


def connect_packet(client_id: str, clean: bool = True, protocol: int = 4) -> bytes:
    """The generator's CONNECT: MQTT 3.1.1 (or ``protocol`` 5: clean start, and a session kept
    for ever unless ``clean``), no keep alive (an idle client is never timed out)."""
    if protocol == 5:
        expiry = Properties({} if clean else {"session_expiry_interval": 0xFFFFFFFF})
        return encode_connect(client_id, clean_session=clean, keep_alive=0, level=5, properties=expiry)
    return encode_connect(client_id, clean_session=clean, keep_alive=0)


def subscribe_packet(filters: list[tuple[str, int]], protocol: int) -> bytes:
    """A SUBSCRIBE of ``filters`` (MQTT 5: the options byte holds only the QoS)."""
    return encode_subscribe_v5(1, *filters) if protocol == 5 else encode_subscribe(1, *filters)


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int, protocol: int) -> bytes:
    """A PUBLISH (MQTT 5: with an empty property block)."""
    if protocol == 5:
        return encode_publish_v5(topic, payload, b"\x00", qos=qos, packet_id=packet_id)
    return encode_publish(topic, payload, qos=qos, packet_id=packet_id)


class PacketReader:
    """Splits a socket's byte stream into (first byte, body) packets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def packets(self) -> list[tuple[int, bytes]]:
        """Every complete packet after one recv (an empty list when the peer closed: check ``closed``)."""
        chunk = self.sock.recv(1 << 18)
        self.closed = not chunk
        self.buffer += chunk
        buffer, size, start, out = self.buffer, len(self.buffer), 0, []
        while size - start >= 2:
            length, shift, index = 0, 0, start + 1
            while index < size:
                byte = buffer[index]
                length |= (byte & 0x7F) << shift
                shift, index = shift + 7, index + 1
                if not byte & 0x80:
                    break
            else:
                break
            if size < index + length:
                break
            out.append((buffer[start], bytes(buffer[index : index + length])))
            start = index + length
        del buffer[:start]  # once per recv, not once per packet
        return out


def open_client(
    address: tuple[str, int], client_id: str, clean: bool = True, protocol: int = 4
) -> tuple[socket.socket, PacketReader]:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id, clean, protocol))
    reader = PacketReader(sock)
    while not (packets := reader.packets()):
        if reader.closed:
            raise ConnectionError("closed before CONNACK")
    if packets[0][0] != 0x20 or packets[0][1][1] != 0:
        raise ConnectionError(f"CONNACK refused: {packets[0]!r}")
    return sock, reader


@dataclass
class Received:
    """What one subscriber saw."""

    count: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    first: float = 0.0
    last: float = 0.0
    latencies_us: list[int] = field(default_factory=list)
    last_seq: dict[int, int] = field(default_factory=dict)


def _count(got: Received, packets: list[tuple[int, bytes]], keep_latency: bool, v5: bool = False) -> bytes:
    """Count the PUBLISH packets; return the PUBACKs to send (MQTT 5: after the property block,
    which is read only for its length)."""
    now = time.perf_counter()
    acks = bytearray()
    for first, body in packets:
        if first & 0xF0 != 0x30:
            continue
        qos = (first >> 1) & 3
        topic_end = 2 + struct.unpack_from("!H", body)[0]
        if qos:
            acks += encode_puback(struct.unpack_from("!H", body, topic_end)[0])
        payload_at = topic_end + (2 if qos else 0)
        if v5:  # the property block: one 0 byte in the benchmark's messages, else read its length
            if body[payload_at]:
                length, start = decode_varint(body, payload_at)
                payload_at = start + length
            else:
                payload_at += 1
        publisher, seq, sent = HEADER.unpack_from(body, payload_at)
        previous = got.last_seq.get(publisher, -1)
        if seq == previous:
            got.duplicates += 1
        elif seq < previous:
            got.out_of_order += 1
        else:
            got.last_seq[publisher] = seq
        got.count += 1
        if keep_latency:
            got.latencies_us.append((time.time_ns() - sent) // 1000)
        got.first = got.first or now
        got.last = now
    return bytes(acks)


def subscribe_and_count(
    address: tuple[str, int],
    client_ids: list[str],
    filters: list[tuple[str, int]],
    expected: int,
    idle: float,
    ready: object,
    keep_latency: bool = False,
    clean: bool = True,
    protocol: int = 4,
) -> list[Received]:
    """Subscribe one socket per client id (clean session ``clean``), signal ``ready`` (a
    multiprocessing Event), then count on every socket until each saw ``expected`` messages or
    all were idle for ``idle`` seconds."""
    import selectors

    selector = selectors.DefaultSelector()
    results: dict[int, Received] = {}
    for client_id in client_ids:
        sock, reader = open_client(address, client_id, clean, protocol)
        sock.sendall(subscribe_packet(filters, protocol))
        while not any(first == 0x90 for first, _ in reader.packets()):
            pass
        selector.register(sock, selectors.EVENT_READ, reader)
        results[sock.fileno()] = Received()
    ready.set()  # type: ignore[attr-defined]
    open_sockets = len(client_ids)
    try:
        while open_sockets and any(r.count < expected for r in results.values()):
            events = selector.select(timeout=idle)
            if not events:
                break
            for key, _ in events:
                reader = key.data
                packets = reader.packets()
                if reader.closed:
                    selector.unregister(key.fileobj)
                    open_sockets -= 1
                    continue
                acks = _count(results[key.fd], packets, keep_latency, protocol == 5)
                if acks:
                    reader.sock.sendall(acks)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return list(results.values())


def publish_messages(
    address: tuple[str, int],
    client_id: str,
    publisher: int,
    topic: str,
    count: int,
    size: int,
    qos: int,
    go: object,
    rate: float = 0.0,
    done: object = None,
    protocol: int = 4,
) -> tuple[float, float]:
    """Publish ``count`` messages (paced at ``rate`` per second if given); return (start, end) times.

    The connection stays open until ``done`` (a multiprocessing Event) is set, so that a broker
    that drops received messages on DISCONNECT is measured on its routing, not on that bug.
    """
    sock, reader = open_client(address, client_id, protocol=protocol)
    padding = b"x" * max(0, size - HEADER.size)
    go.wait()  # type: ignore[attr-defined]
    start = time.perf_counter()
    batch = 1 if rate else 200
    if count == 0:
        sock.close()
        return start, start
    acked, seq = 0, 0
    while seq < count:
        chunk = bytearray()
        for _ in range(min(batch, count - seq)):
            packet_id = seq % 65535 + 1
            payload = HEADER.pack(publisher, seq, time.time_ns()) + padding
            chunk += publish_packet(topic, payload, qos, packet_id, protocol)
            seq += 1
        sock.sendall(chunk)
        if qos:  # keep at most ~1000 unacknowledged
            while seq - acked > 1000:
                acked += sum(1 for first, _ in reader.packets() if first == 0x40)
        if rate:
            pause = start + seq / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    sock.settimeout(30)
    while qos and acked < count:
        acked += sum(1 for first, _ in reader.packets() if first == 0x40)
    end = time.perf_counter()
    if done is not None:
        done.wait(600)  # type: ignore[attr-defined]
    sock.sendall(DISCONNECT)
    sock.close()
    return start, end


def hold_clients(
    address: tuple[str, int], prefix: str, count: int, go: object, spans: object, release: object,
    window: int = CONNECT_WINDOW,
) -> None:  # fmt: skip
    """After ``go``, connect ``count`` clients with ``window`` handshakes in flight at once
    (non-blocking sockets and one selector, so the rate measured is the broker's, not one
    client's round trips); put (start, end) on ``spans`` (a multiprocessing queue) and keep
    the connections open until ``release``."""
    go.wait()  # type: ignore[attr-defined]
    start = time.perf_counter()
    held = _connect_many(address, prefix, count, window)
    spans.put((start, time.perf_counter()))  # type: ignore[attr-defined]
    release.wait(600)  # type: ignore[attr-defined]
    for sock in held:
        sock.close()


def _connect_many(address: tuple[str, int], prefix: str, count: int, window: int) -> list[socket.socket]:
    """``count`` accepted MQTT connections, opened ``window`` at a time."""
    selector = selectors.DefaultSelector()
    held: list[socket.socket] = []
    started = 0
    try:
        while len(held) < count:
            while started < count and started - len(held) < window:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect_ex(address)  # in progress: writable once connected
                selector.register(sock, selectors.EVENT_WRITE, connect_packet(f"{prefix}{started}"))
                started += 1
            ready = selector.select(timeout=30)
            if not ready:
                raise TimeoutError("no CONNACK within 30 s")
            for key, events in ready:
                sock = key.fileobj  # type: ignore[assignment]
                if events & selectors.EVENT_WRITE:  # connected: send the CONNECT, then wait for CONNACK
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error or sock.send(key.data) != len(key.data):
                        raise ConnectionError(f"connect failed ({error})")
                    selector.modify(sock, selectors.EVENT_READ, b"")
                    continue
                chunk = sock.recv(16)
                if not chunk:
                    raise ConnectionError("closed before CONNACK")
                received = key.data + chunk
                if len(received) < 4:
                    selector.modify(sock, selectors.EVENT_READ, received)
                elif received[:2] != b"\x20\x02" or received[3] != 0:
                    raise ConnectionError(f"CONNACK refused: {received!r}")
                else:
                    selector.unregister(sock)
                    held.append(sock)
    finally:
        selector.close()
    return held
