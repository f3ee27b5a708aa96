"""Durable state when the store cannot be written: nothing unacknowledged is acknowledged, nothing
discarded comes back. The store is made to fail by holding its write lock from another connection
past SQLite's busy timeout (5 s), so each test takes that long."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker.mqtt.encoding import encode_connect, encode_pubrel
from broker.mqtt.framing import encode_publish
from tests.helpers import running_broker, wait_state
from tests.integration.test_persistence import (
    PUBCOMP,
    PUBREC,
    on_file,
    publish_fields,
    round_trip,
    store_held,
    subscribe,
)
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


async def test_a_publish_the_store_cannot_take_is_not_acknowledged(tmp_path: Path) -> None:
    """When the commit fails, the PUBLISH gets no PUBACK and its connection is closed (the client resends)."""
    path = tmp_path / "edgemq.db"
    async with running_broker(on_file(path)) as broker, RawClient.open(broker.mqtt_address) as sub:
        await subscribe(sub, "sub", ("d/#", 1))
        async with RawClient.open(broker.mqtt_address) as pub, RawClient.open(broker.mqtt_address) as bystander:
            assert await pub.connack(encode_connect("pub")) == (0, 0)
            assert await bystander.connack(encode_connect("bystander")) == (0, 0)
            with store_held(path):  # held past SQLite's busy timeout: the commit fails
                await pub.send(encode_publish("d/1", b"lost?", qos=1, packet_id=3))
                assert await pub.closed_by_peer(timeout=10)
            stats = broker.state.store_stats()
            assert stats is not None
            assert stats.write_errors >= 1
            await round_trip(bystander)  # everyone else is still served


async def test_an_http_publish_the_store_cannot_take_is_refused(tmp_path: Path) -> None:
    """An HTTP publish whose commit fails answers 503 with the store's reason, not 200."""
    path = tmp_path / "edgemq.db"
    async with running_broker(on_file(path)) as broker, RawClient.open(broker.mqtt_address) as sub:
        await subscribe(sub, "sub", ("h/#", 1))
        async with httpx.AsyncClient(base_url=broker.api_url, auth=("admin", "public"), timeout=15) as api:
            with store_held(path):
                body = {"topic": "h/1", "payload": "x", "qos": 1}
                answer = await api.post("/v4/mqtt/publish", json=body)
        assert answer.status_code == 503
        assert "durable" in answer.json()["message"]


async def test_a_qos2_resend_after_a_failed_commit_is_acknowledged_only_once_durable(tmp_path: Path) -> None:
    """A QoS 2 PUBLISH whose commit failed, resent after reconnecting, gets PUBREC only with its copies stored."""
    path = tmp_path / "edgemq.db"
    settings = on_file(path)
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "sub", ("d/#", 2))
        await wait_state(broker, lambda s: s.counts().connections == 0)
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub", clean_session=False)) == (0, 0)
            with store_held(path):  # held past the busy timeout: the commit fails
                await pub.send(encode_publish("d/1", b"once", qos=2, packet_id=3))
                assert await pub.closed_by_peer(timeout=10)  # not acknowledged: the client resends
        async with RawClient.open(broker.mqtt_address) as pub:
            assert await pub.connack(encode_connect("pub", clean_session=False)) == (1, 0)
            resend = encode_publish("d/1", b"once", qos=2, packet_id=3)
            await pub.send(bytes((resend[0] | 0x08,)) + resend[1:])  # DUP=1
            assert (await pub.read_packet())[0] >> 4 == PUBREC  # acknowledged now: it must be durable
            await pub.send(encode_pubrel(3))
            assert (await pub.read_packet())[0] >> 4 == PUBCOMP
    async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as sub:
        assert await sub.connack(encode_connect("sub", clean_session=False)) == (1, 0)
        first, body = await sub.read_packet()
        assert publish_fields(body, first)[:2] == ("d/1", b"once")


async def test_a_session_discarded_while_the_store_fails_does_not_come_back(tmp_path: Path) -> None:
    """A clean CONNECT whose discard of the stored session fails is refused (CONNACK 3); the discard is
    written once the store works again, so the session does not come back at the next start."""
    path = tmp_path / "edgemq.db"
    settings = on_file(path)
    async with running_broker(settings) as broker:
        async with RawClient.open(broker.mqtt_address) as sub:
            await subscribe(sub, "gone", ("g/#", 1))
        await wait_state(broker, lambda s: s.counts().connections == 0)
        with store_held(path):  # held past the busy timeout: the discard's commit fails
            async with RawClient.open(broker.mqtt_address) as clean:
                await clean.send(encode_connect("gone"))
                assert await clean.read_packet(timeout=15) == (0x20, b"\x00\x03")  # server unavailable
    async with running_broker(settings) as broker:
        assert [c.info.client_id for c in broker.state.clients()] == []
