"""Durable state in-process: what a broker on a store file holds comes back after a stop and a start."""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.config.settings import BrokerSettings
from broker.mqtt.encoding import encode_connect, encode_puback, encode_pubrec, encode_pubrel, encode_subscribe
from broker.mqtt.framing import encode_publish
from tests.helpers import ephemeral_settings, running_broker, wait_state
from tests.integration.config_broker import CONF, broker_from_file
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK = 3, 4, 5, 6, 7, 9


def on_file(path: Path, **sections: object) -> BrokerSettings:
    """Ephemeral settings persisting to ``path`` (sync always, the default)."""
    return ephemeral_settings(persistence={"enable": True, "path": str(path)}, **sections)


def publish_fields(body: bytes, first: int) -> tuple[str, bytes, int, bool]:
    """(topic, payload, packet id, dup) of a PUBLISH body with QoS > 0."""
    (length,) = struct.unpack("!H", body[:2])
    topic = body[2 : 2 + length].decode()
    (packet_id,) = struct.unpack("!H", body[2 + length : 4 + length])
    return topic, body[4 + length :], packet_id, bool(first & 0x08)


async def subscribe(client: RawClient, client_id: str, *filters: tuple[str, int]) -> None:
    """Connect ``client`` with a persistent session and subscribe."""
    assert await client.connack(encode_connect(client_id, clean_session=False)) == (0, 0)
    await client.send(encode_subscribe(1, *filters))
    first, _ = await client.read_packet()
    assert first >> 4 == SUBACK


async def publish_acknowledged(
    client: RawClient, topic: str, payload: bytes, qos: int, packet_id: int, *, retain: bool = False
) -> None:
    """Publish and wait for the PUBACK (QoS 1) or PUBREC (QoS 2)."""
    await client.send(encode_publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
    first, body = await client.read_packet()
    assert (first >> 4, body) == ({1: PUBACK, 2: PUBREC}[qos], struct.pack("!H", packet_id))


@contextlib.contextmanager
def store_held(path: Path) -> Iterator[None]:
    """Hold the store's write lock from another connection: the broker's commits wait meanwhile
    (and fail after SQLite's 5 s busy timeout)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")


async def round_trip(client: RawClient) -> None:
    """PINGREQ and its PINGRESP: the broker has read everything sent before."""
    await client.send(b"\xc0\x00")
    assert await client.read_packet() == (0xD0, b"")


async def receive_all(client: RawClient, count: int) -> list[bytes]:
    """The payloads of ``count`` PUBLISH packets, each acknowledged (QoS 2: through PUBCOMP)."""
    got: list[bytes] = []
    releases = 0
    while len(got) < count or releases:
        first, body = await client.read_packet()
        if first >> 4 == PUBREL:
            await client.send(struct.pack("!BBH", 0x70, 2, *struct.unpack("!H", body)))
            releases -= 1
            continue
        _, payload, packet_id, _ = publish_fields(body, first)
        got.append(payload)
        qos = (first >> 1) & 3
        await client.send(encode_puback(packet_id) if qos == 1 else encode_pubrec(packet_id))
        releases += qos == 2
    return got


async def test_retained_messages_survive_a_restart(tmp_path: Path) -> None:
    """Retained messages are read back from the store by the next broker on the file."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as pub:
        assert await pub.connack(encode_connect("pub")) == (0, 0)
        for n in range(70):
            await publish_acknowledged(pub, f"r/{n}", b"v%d" % n, 1, n + 1, retain=True)
        await publish_acknowledged(pub, "r/0", b"", 1, 100, retain=True)  # cleared: not restored
    async with running_broker(settings) as broker:
        retained = {topic for topic, _, _ in broker._mqtt.retained()}
    assert retained == {f"r/{n}" for n in range(1, 70)}


async def test_a_persistent_session_and_its_queue_survive_a_restart(tmp_path: Path) -> None:
    """Subscriptions and queued QoS 1/2 messages come back in order, with session present 1."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "sub", ("q/#", 2))
        await wait_state(broker, lambda s: s.counts().connections == 0)
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            for n in range(100):
                await publish_acknowledged(pub, "q/a", b"%d" % n, 1 + n % 2, n + 1)
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        clients = {c.info.client_id: c.connected for c in broker.state.clients()}
        assert clients == {"sub": False}
        assert await sub.connack(encode_connect("sub", clean_session=False)) == (1, 0)
        got = await receive_all(sub, 100)
        assert got == [b"%d" % n for n in range(100)]
        await round_trip(sub)  # every acknowledgement was read: the rows' deletion is written
    assert _rows(tmp_path, "messages") == []


def _rows(tmp_path: Path, table: str) -> list[tuple[object, ...]]:
    """The rows of one table, read by a second connection (WAL: committed rows only)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "edgemq.db")) as connection:
        return connection.execute(f"SELECT * FROM {table}").fetchall()


async def test_a_message_in_flight_is_resent_with_dup_after_a_restart(tmp_path: Path) -> None:
    """A QoS 1 copy sent and not acknowledged when the broker stops is resent with DUP=1 and its packet id."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        await subscribe(sub, "sub", ("f/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            await publish_acknowledged(pub, "f/1", b"in flight", 1, 7)
        first, body = await sub.read_packet()
        _, _, sent_id, dup = publish_fields(body, first)
        assert not dup  # not acknowledged: the broker stops with it in flight
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        assert await sub.connack(encode_connect("sub", clean_session=False)) == (1, 0)
        first, body = await sub.read_packet()
        assert publish_fields(body, first) == ("f/1", b"in flight", sent_id, True)


async def test_a_received_qos2_id_is_kept_across_a_restart(tmp_path: Path) -> None:
    """A QoS 2 PUBLISH resent after a restart, before its PUBREL, is not routed a second time."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "sub", ("x/#", 2))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub", clean_session=False)) == (0, 0)
            await publish_acknowledged(pub, "x/1", b"once", 2, 9)  # PUBREC, then the broker stops
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub", clean_session=False)) == (1, 0)
            await pub.send(encode_publish("x/1", b"once", qos=2, packet_id=9))  # the resend
            assert (await pub.read_packet())[0] >> 4 == PUBREC
            await pub.send(encode_pubrel(9))
            assert (await pub.read_packet())[0] >> 4 == PUBCOMP
        async with RawClient.open(broker.mqtt_address) as sub:
            assert await sub.connack(encode_connect("sub", clean_session=False)) == (1, 0)
            first, body = await sub.read_packet()
            assert publish_fields(body, first)[:2] == ("x/1", b"once")
            _, _, packet_id, _ = publish_fields(body, first)
            await sub.send(encode_pubrec(packet_id))
            assert (await sub.read_packet())[0] >> 4 == PUBREL
            with pytest.raises(TimeoutError):  # no second copy
                await sub.read_packet(timeout=0.5)
    assert _rows(tmp_path, "incoming_qos2") == []


async def test_clean_sessions_and_qos0_are_not_stored(tmp_path: Path) -> None:
    """A clean session's subscriptions and QoS 0 copies leave no row in the store."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        assert await sub.connack(encode_connect("clean")) == (0, 0)
        await sub.send(encode_subscribe(1, ("c/#", 1)))
        await sub.read_packet()
        async with RawClient.open(broker.mqtt_address) as persistent:
            await subscribe(persistent, "keeps", ("c/#", 0))
            async with RawClient.open(broker.mqtt_address) as pub:
                assert await pub.connack(encode_connect("pub")) == (0, 0)
                await publish_acknowledged(pub, "c/1", b"x", 1, 1)
    assert [row[0] for row in _rows(tmp_path, "sessions")] == ["keeps"]
    assert _rows(tmp_path, "subscriptions") == [("keeps", "c/#", 0, 0, 0, None)]  # no MQTT 5 options
    assert _rows(tmp_path, "messages") == []


async def test_a_publish_is_acknowledged_only_once_committed(tmp_path: Path) -> None:
    """While the store cannot commit, a QoS 1 PUBLISH for a persistent session gets no PUBACK; it comes after."""
    path = tmp_path / "edgemq.db"
    async with running_broker(on_file(path)) as broker, RawClient.open(broker.mqtt_address) as sub:
        await subscribe(sub, "sub", ("d/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            with store_held(path):  # the broker's next commit waits for this transaction
                await pub.send(encode_publish("d/1", b"held", qos=1, packet_id=5))
                first, body = await sub.read_packet()  # routed at once ...
                assert publish_fields(body, first)[:2] == ("d/1", b"held")
                with pytest.raises(TimeoutError):  # ... acknowledged only once durable
                    await pub.read_packet(timeout=0.5)
            assert await pub.read_packet() == (PUBACK << 4, struct.pack("!H", 5))


async def test_kick_with_clean_and_deleting_retained_remove_stored_state(tmp_path: Path) -> None:
    """A session discarded through the admin API, and a retained message deleted there, leave the store."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "gone", ("k/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            await publish_acknowledged(pub, "k/1", b"queued", 1, 1)
            await pub.send(encode_publish("k/r", b"kept", qos=1, packet_id=2, retain=True))
            await pub.read_packet()
        auth = ("admin", "public")
        async with httpx.AsyncClient(base_url=broker.api_url, auth=auth) as api:
            assert (await api.delete("/v4/clients/gone", params={"clean": "true"})).status_code == 200
            assert (await api.delete("/v4/mqtt/retained", params={"topic": "k/r"})).status_code == 200
    assert (_rows(tmp_path, "sessions"), _rows(tmp_path, "messages"), _rows(tmp_path, "retained")) == ([], [], [])


async def test_state_survives_an_admin_restart(tmp_path: Path) -> None:
    """req 10 restart keeps the store open: a session queued before it is served after it."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "sub", ("t/#", 1))
        async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public")) as api:
            answer = await api.post("/v1", json={"req": 10, "seq": 1, "action": "Restart"})
            assert answer.json() == {"code": 0, "seq": 1, "rep": 10}
        await broker.wait_for_restarts()
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            await publish_acknowledged(pub, "t/1", b"after restart", 1, 1)
        assert [row[0] for row in _rows(tmp_path, "messages")] == ["sub"]


async def test_a_restart_keeps_the_store_it_started_with(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """req 10 after the file names another store: the running one stays, and the settings say so."""
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    text = CONF + f'persistence {{ enable = true, path = "{first}" }}\n'
    async with broker_from_file(tmp_path, text) as (broker, _api, conf):
        conf.write_text(CONF + f'persistence {{ enable = true, path = "{second}" }}\n')
        await broker.restart()
        assert broker.settings.persistence.store_path == first
        assert broker.state.store_stats() is not None
        assert broker.state.store_stats().path == str(first)  # type: ignore[union-attr]
    assert not second.exists()
    assert any("persistence: applies when edgemq starts again" in r.getMessage() for r in caplog.records)


async def test_acknowledgements_keep_their_order_behind_a_held_one(tmp_path: Path) -> None:
    """A PUBACK that needs no commit waits behind an earlier one that does (MQTT-4.6.0-2)."""
    path = tmp_path / "edgemq.db"
    async with running_broker(on_file(path)) as broker, RawClient.open(broker.mqtt_address) as sub:
        await subscribe(sub, "sub", ("d/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            with store_held(path):
                await pub.send(encode_publish("d/1", b"stored", qos=1, packet_id=1))
                await pub.send(encode_publish("nobody/1", b"not stored", qos=1, packet_id=2))
                await sub.read_packet()  # the first was routed; the second is read after it
                with pytest.raises(TimeoutError):
                    await pub.read_packet(timeout=0.5)
            acks = [await pub.read_packet(), await pub.read_packet()]
            assert acks == [(PUBACK << 4, struct.pack("!H", n)) for n in (1, 2)]


async def test_a_copy_in_flight_is_resent_before_the_queued_ones_after_a_restart(tmp_path: Path) -> None:
    """Copies come back in the order they were routed: the one in flight (DUP=1) before those queued later."""
    settings = on_file(tmp_path / "edgemq.db")
    async with (
        running_broker(settings) as broker,
        RawClient.open(broker.mqtt_address) as sub,
        RawClient.open(broker.mqtt_address) as pub,
    ):
        await subscribe(sub, "sub", ("o/#", 1))
        assert await pub.connack(encode_connect("pub")) == (0, 0)
        await pub.send(encode_publish("o/1", b"first", qos=1, packet_id=1))
        await pub.read_packet()
        first, _ = await sub.read_packet()  # never acknowledged
        assert first >> 4 == PUBLISH
        sub.abort()
        await wait_state(broker, lambda s: s.counts().connections == 1)
        await pub.send(encode_publish("o/1", b"second", qos=1, packet_id=2))
        await pub.read_packet()
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        assert await sub.connack(encode_connect("sub", clean_session=False)) == (1, 0)
        got = []
        for _ in range(2):
            first, body = await sub.read_packet()
            got.append(publish_fields(body, first)[1])
        assert got == [b"first", b"second"]


async def test_reset_empties_the_store(tmp_path: Path) -> None:
    """``EdgeBroker.reset`` forgets stored sessions and retained messages; the next start has none."""
    settings = on_file(tmp_path / "edgemq.db")
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "sub", ("z/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            await publish_acknowledged(pub, "z/1", b"r", 1, 1, retain=True)
        await broker.reset()
    async with running_broker(settings) as broker:
        assert (broker.state.clients(), broker._mqtt.retained()) == ([], [])
