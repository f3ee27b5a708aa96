"""Durable state across real process deaths: the ``edgemq`` command on a store file, killed with
SIGKILL or stopped with SIGTERM mid-burst, loses nothing it acknowledged; a store it cannot use
stops it with exit 2 naming the file. The long version is scripts/durability_soak.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import struct
from pathlib import Path

import httpx
import pytest

from broker.mqtt.encoding import encode_connect, encode_pubrel, encode_subscribe
from broker.mqtt.framing import encode_publish
from tests.helpers import WAIT
from tests.integration.durability_runs import (
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    Receiver,
    crash_round,
    edgemq,
    error_lines,
    payload,
    plan,
    refused_start,
    write_conf,
)
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

ADMIN = ("admin", "public")


@pytest.mark.parametrize("stop_after", [1, 50, 300])
async def test_kill_9_mid_burst_loses_nothing_acknowledged(tmp_path: Path, stop_after: int) -> None:
    """After kill -9 at the N-th ack: session present, every acked message once (QoS 2) in order, retained back."""
    burst, problems = await crash_round(write_conf(tmp_path, tmp_path / "edgemq.db"), stop_after)
    assert problems == [], f"{len(burst.acked)} acknowledged of {len(burst.sent)} sent"


async def test_sigterm_mid_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A clean stop (SIGTERM, exit 0) in a publish burst keeps the same promise as kill -9."""
    burst, problems = await crash_round(write_conf(tmp_path, tmp_path / "edgemq.db"), 100, signal.SIGTERM)
    assert problems == [], f"{len(burst.acked)} acknowledged of {len(burst.sent)} sent"


async def publish_acknowledged(address: tuple[str, int], numbers: range) -> None:
    """Publish messages ``numbers`` one at a time through their PUBACK or PUBCOMP."""
    async with RawClient.open(address) as client:
        assert await client.connack(encode_connect("one-by-one")) == (0, 0)
        for n in numbers:
            topic, qos, retain = plan(n)
            await client.send(encode_publish(topic, payload(n), qos=qos, packet_id=n, retain=retain))
            assert (await client.read_packet())[0] >> 4 == (PUBACK if qos == 1 else PUBREC)
            if qos == 2:
                await client.send(encode_pubrel(n))
                assert (await client.read_packet())[0] >> 4 == PUBCOMP


async def stored_copies(store: Path, client_id: str, expected: dict[int, int]) -> dict[int, int]:
    """{message number: released} of the committed copies of ``client_id``, read until they are ``expected``."""
    rows: dict[int, int] = {}
    try:
        async with asyncio.timeout(WAIT):
            while rows != expected:
                with contextlib.closing(sqlite3.connect(store)) as reader:  # WAL: committed rows only
                    found = reader.execute("SELECT payload, released FROM messages WHERE client_id = ?", (client_id,))
                    rows = {int(data[:8]): released for data, released in found}
                await asyncio.sleep(0.01)  # poll the file: the broker tells no one when it committed
    except TimeoutError:
        pass
    return rows


async def test_copies_in_flight_come_again_with_dup_after_kill_9(tmp_path: Path) -> None:
    """Copies an online subscriber has not acknowledged come back after kill -9 with DUP=1 and their packet ids."""
    store = tmp_path / "edgemq.db"
    conf = write_conf(tmp_path, store)
    receiver = Receiver()
    withheld = set(range(5, 13))  # QoS 2: 6 (its PUBREC is sent, its PUBCOMP is not), 9 and 12
    async with edgemq(conf) as broker, RawClient.open(broker.mqtt) as client:
        await receiver.subscribe(client)
        await publish_acknowledged(broker.mqtt, range(1, 13))
        async with asyncio.timeout(WAIT):
            while len(receiver.delivered) < 12 or len(receiver.releases) < 2:  # PUBREL of 3 and 6
                await receiver.take(client, lambda n, qos: n not in withheld or n == 6)
                receiver.withhold_pubcomp = {receiver.packet_ids.get(6, -1)}
        expected_rows = {n: int(n == 6) for n in withheld}
        assert await stored_copies(store, receiver.client_id, expected_rows) == expected_rows
        broker.signal(signal.SIGKILL)
        assert await broker.exit_code() == -9
    first_ids, before = dict(receiver.packet_ids), len(receiver.delivered)
    async with edgemq(conf) as broker, RawClient.open(broker.mqtt) as client:
        assert await client.connack(encode_connect(receiver.client_id, clean_session=False)) == (1, 0)
        receiver.withhold_pubcomp = set()
        await receiver.collect(client, withheld - {6, 9, 12}, broker.mqtt)
    assert sorted(receiver.dups) == sorted(first_ids[n] for n in withheld - {6})
    assert sorted(receiver.releases[2:]) == sorted(first_ids[n] for n in (6, 9, 12))
    again = [(n, 1) for n in sorted(withheld - {6, 9, 12})] + [(-1, 1)]  # QoS 1 at least once, and the marker
    assert sorted(receiver.delivered[before:]) == sorted(again)


async def test_disk_full_leaves_publishes_unacknowledged_and_says_so(tmp_path: Path) -> None:
    """Past RLIMIT_FSIZE: one ERROR naming the file, no PUBACK, req 2 and Prometheus show it, QoS 0 flows."""
    store = tmp_path / "edgemq.db"
    limit = 192 * 1024  # above the empty store (52 KiB, its -shm 32 KiB): the write-ahead log hits it
    async with edgemq(write_conf(tmp_path, store), file_size_limit=limit) as broker:
        assert store.stat().st_size < limit
        async with RawClient.open(broker.mqtt) as sub:
            await Receiver("full-sub").subscribe(sub, "d/#")
            await sub.send(DISCONNECT)
        async with RawClient.open(broker.mqtt) as pub:
            assert await pub.connack(encode_connect("filler")) == (0, 0)
            acknowledged = 0
            for n in range(1, 2 * limit // 16384 + 10):
                await pub.send(encode_publish("d/x", b"%08d" % n + b"x" * 16384, qos=1, packet_id=n))
                try:
                    first, body = await pub.read_packet()
                except asyncio.IncompleteReadError:
                    break  # closed by the broker, unacknowledged
                assert (first >> 4, body) == (PUBACK, struct.pack("!H", n))
                acknowledged = n
            else:
                pytest.fail(f"{n} publishes of 16 KiB were all acknowledged under a file size limit of {limit}")
        assert acknowledged > 0  # the store worked until the limit, then failed
        await broker.log.wait_for(rf"ERROR .*{re.escape(str(store))}")
        async with httpx.AsyncClient(base_url=f"{broker.api}/api", auth=ADMIN, timeout=WAIT) as api:
            figures = (await api.post("/v1", json={"req": 2, "seq": 1})).json()["data"]["store"]
            prometheus = (await api.get("/v4/prometheus")).text
        async with RawClient.open(broker.mqtt) as listener, RawClient.open(broker.mqtt) as talker:
            assert await listener.connack(encode_connect("qos0-listener")) == (0, 0)
            await listener.send(encode_subscribe(1, ("z/#", 0)))
            assert (await listener.read_packet())[0] >> 4 == 9
            assert await talker.connack(encode_connect("qos0-talker")) == (0, 0)
            await talker.send(encode_publish("z/1", b"still serving"))
            assert await listener.read_packet() == (PUBLISH << 4, b"\x00\x03z/1still serving")
    assert figures["write_errors"] > 0
    assert str(store) in figures["last_error"]
    assert re.search(r"^edgemq_store_failing 1(\.0)?$", prometheus, re.MULTILINE), prometheus
    assert len(error_lines(broker.log.lines, store)) == 1, broker.log.lines


@pytest.mark.parametrize("place", ["read-only directory", "under a regular file"])
async def test_a_store_that_cannot_be_created_stops_the_command(tmp_path: Path, place: str) -> None:
    """A store in a directory that cannot be written, or under a file: exit 2 and an ERROR naming the file."""
    if place == "read-only directory":
        directory = tmp_path / "data"
        directory.mkdir(mode=0o500)
        if os.access(directory, os.W_OK):
            pytest.skip("this user writes to a 0500 directory (root): the other case covers it")
    else:
        directory = tmp_path / "a-file"
        directory.write_text("not a directory\n")
    store = directory / "edgemq.db"
    code, err = await refused_start(write_conf(tmp_path, store))
    assert code == 2, err
    assert len(error_lines(err.splitlines(), store)) == 1, err
    assert "edgemq ready" not in err


def foreign_database(path: Path) -> None:
    """Another application's SQLite file."""
    with contextlib.closing(sqlite3.connect(path)) as other, other:
        other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        other.execute("INSERT INTO invoices VALUES (1, 9.5)")


@pytest.mark.parametrize("kind", ["garbage", "foreign SQLite"])
async def test_a_file_that_is_not_an_edgemq_store_is_refused_and_kept(tmp_path: Path, kind: str) -> None:
    """A corrupt file or another program's database: exit 2, an ERROR naming it, its bytes unchanged."""
    store = tmp_path / "edgemq.db"
    if kind == "garbage":
        store.write_bytes(b"\x00\xffnot a database\n" * 400)
    else:
        foreign_database(store)
    before = store.read_bytes()
    code, err = await refused_start(write_conf(tmp_path, store))
    assert code == 2, err
    assert len(error_lines(err.splitlines(), store)) == 1, err
    assert store.read_bytes() == before


async def test_a_second_process_on_the_same_store_is_refused(tmp_path: Path) -> None:
    """A second edgemq on a store in use exits 2 ("in use by another process"); the first keeps serving."""
    store = tmp_path / "edgemq.db"
    conf = write_conf(tmp_path, store)
    async with edgemq(conf) as first:
        code, err = await refused_start(conf)
        assert code == 2, err
        assert f"the store {store} is in use by another process" in err
        async with RawClient.open(first.mqtt) as client:
            assert await client.connack(encode_connect("after-refusal")) == (0, 0)
            await client.send(encode_publish("t/r/kept", b"still mine", qos=1, packet_id=1, retain=True))
            assert await client.read_packet() == (PUBACK << 4, b"\x00\x01")
    with contextlib.closing(sqlite3.connect(store)) as reader:
        assert reader.execute("SELECT topic, payload FROM retained").fetchall() == [("t/r/kept", b"still mine")]
