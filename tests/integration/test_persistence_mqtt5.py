"""MQTT 5 sessions on a store file across a stop and a start: their Session Expiry Interval runs on
(counting the time the broker was down), and their subscriptions keep no local, retain as published
and their identifiers (3.1.2.11.2, 3.8.3.1, 3.8.2.1.2); 3.1.1 sessions still never expire."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from broker.config.settings import BrokerSettings
from broker.mqtt.encoding import encode_connect, encode_subscribe
from broker.testing.clock import ManualClock
from tests.helpers import ephemeral_settings, running_broker, wait_state
from tests.mqtt5_packets import PUBLISH, SUBACK, V5Client, ack, connected, disconnect, options, props, publish
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

PUBACK = 4
SLACK = 5
"""Seconds of real time a stop and a start may take (they count as time the broker was down)."""


def on_file(path: Path) -> BrokerSettings:
    return ephemeral_settings(persistence={"enable": True, "path": str(path)})


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What a second connection reads from the store file (committed rows only)."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def back_date(path: Path, seconds: float) -> None:
    """Move the stored end of every session's connection ``seconds`` back: the broker was down that long."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as store:
        store.execute("UPDATE sessions SET ended_at = ended_at - ?", (seconds,))


async def leave_session(
    path: Path, client_id: str, expiry: int, *filters: tuple[str, int], last_expiry: int | None = None
) -> None:
    """On a broker on ``path``, ``client_id`` makes a session with ``expiry``, subscribes to
    ``filters`` (with subscription identifier 7) and disconnects (setting ``last_expiry``)."""
    async with running_broker(on_file(path)) as broker:
        terms = props(session_expiry_interval=expiry)
        async with connected(broker.mqtt_address, client_id, properties=terms) as client:
            if filters:
                suback = await client.subscribe(*filters, properties=props(subscription_identifier=7))
                assert all(code < 0x80 for code in suback.reasons)
            changed = props(session_expiry_interval=last_expiry) if last_expiry is not None else None
            await client.send(disconnect(properties=changed))
        await wait_state(broker, lambda state: state.counts().connections == 0)


async def session_present(address: tuple[str, int], client_id: str) -> bool:
    """The session present flag of ``client_id`` connecting with clean start 0 (then leaving)."""
    async with V5Client.open(address) as client:
        connack = await client.connect(client_id, clean_start=False, properties=props(session_expiry_interval=60))
        assert connack.reason == 0
        return connack.session_present


async def test_a_restored_session_expires_when_its_interval_runs_out_and_not_before(tmp_path: Path) -> None:
    """A session kept 60 s after its connection is there 55 s after a restart and gone after 61 s."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "brief", 60, ("brief/#", options(1)))
    clock = ManualClock()
    async with running_broker(on_file(path), clock=clock) as broker:
        assert broker.state.client("brief") is not None
        clock.advance(60 - SLACK)
        assert broker.state.client("brief") is not None
        clock.advance(SLACK + 1)
        await wait_state(broker, lambda state: state.client("brief") is None)
    assert rows(path, "SELECT * FROM sessions") == rows(path, "SELECT * FROM subscriptions") == []


async def test_a_session_whose_time_ran_out_while_the_broker_was_down_is_gone_at_the_start(tmp_path: Path) -> None:
    """A session with 60 s to live whose connection ended 120 s before the start is gone, from the store too."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "late", 60, ("late/#", options(1)))
    back_date(path, 120)
    async with running_broker(on_file(path)) as broker:
        assert broker.state.client("late") is None
        assert rows(path, "SELECT * FROM sessions") == rows(path, "SELECT * FROM subscriptions") == []
        assert not await session_present(broker.mqtt_address, "late")


async def test_a_session_with_time_left_after_the_downtime_is_armed_with_what_is_left(tmp_path: Path) -> None:
    """A session with 60 s to live whose connection ended 40 s before the start expires 20 s after it."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "half", 60)
    back_date(path, 40)
    clock = ManualClock()
    async with running_broker(on_file(path), clock=clock) as broker:
        clock.advance(20 - SLACK)
        assert broker.state.client("half") is not None
        clock.advance(SLACK + 1)
        await wait_state(broker, lambda state: state.client("half") is None)


async def test_a_disconnects_new_expiry_is_the_one_restored(tmp_path: Path) -> None:
    """MQTT-3.14.2: a DISCONNECT that shortens the interval from 300 s to 10 s holds after a restart."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "short", 300, last_expiry=10)
    assert rows(path, "SELECT session_expiry FROM sessions") == [(10,)]
    clock = ManualClock()
    async with running_broker(on_file(path), clock=clock) as broker:
        assert broker.state.client("short") is not None
        clock.advance(10 + 1)
        await wait_state(broker, lambda state: state.client("short") is None)


async def test_a_disconnect_with_expiry_0_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    """A session whose DISCONNECT sets expiry 0 ends with its connection, in the store too: a restart has no session."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "done", 300, ("done/#", options(1)), last_expiry=0)
    assert rows(path, "SELECT * FROM sessions") == rows(path, "SELECT * FROM subscriptions") == []


async def test_a_subscription_identifier_comes_with_messages_after_a_restart(tmp_path: Path) -> None:
    """3.8.2.1.2: a message published after a restart carries the identifier its subscription was made with."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "ids", 300, ("ids/#", options(1)))
    expiry = props(session_expiry_interval=300)
    async with (
        running_broker(on_file(path)) as broker,
        connected(broker.mqtt_address, "ids", clean_start=False, properties=expiry) as sub,
        connected(broker.mqtt_address, "pub") as pub,
    ):
        await pub.publish_acked("ids/a", b"after")
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.properties.subscription_identifiers) == (b"after", [7])


async def test_a_copy_queued_before_a_restart_carries_the_identifier(tmp_path: Path) -> None:
    """A QoS 1 copy queued for the offline session before the restart is delivered with its identifier."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "ids", 300, ("ids/#", options(1)))
    async with running_broker(on_file(path)) as broker, connected(broker.mqtt_address, "pub") as pub:
        await pub.publish_acked("ids/q", b"queued")
    expiry = props(session_expiry_interval=300)
    async with (
        running_broker(on_file(path)) as broker,
        connected(broker.mqtt_address, "ids", clean_start=False, properties=expiry) as sub,
    ):
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.properties.subscription_identifiers) == (b"queued", [7])
        await sub.send(ack(PUBACK, message.packet_id))


async def test_no_local_holds_after_a_restart(tmp_path: Path) -> None:
    """MQTT-3.8.3-3: after a restart, the client's own message on its no-local subscription is not sent back."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "self", 300, ("self/#", options(1, no_local=True)))
    expiry = props(session_expiry_interval=300)
    async with (
        running_broker(on_file(path)) as broker,
        connected(broker.mqtt_address, "self", clean_start=False, properties=expiry) as client,
        connected(broker.mqtt_address, "pub") as pub,
    ):
        await client.publish_acked("self/own", b"mine")
        await pub.publish_acked("self/other", b"theirs")
        message = await client.expect(PUBLISH)  # the other client's, and not its own before it
        assert message.payload == b"theirs"


async def test_retain_as_published_holds_after_a_restart(tmp_path: Path) -> None:
    """3.8.3.1: after a restart, a retained message routed to a retain-as-published subscription keeps RETAIN 1."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "rap", 300, ("rap/#", options(1, retain_as_published=True)))
    expiry = props(session_expiry_interval=300)
    async with (
        running_broker(on_file(path)) as broker,
        connected(broker.mqtt_address, "rap", clean_start=False, properties=expiry) as sub,
        connected(broker.mqtt_address, "pub") as pub,
    ):
        await pub.send(publish("rap/a", b"kept", qos=1, packet_id=1, retain=True))
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.retain) == (b"kept", True)


async def test_a_session_connected_when_the_broker_stopped_uncleanly_gets_its_whole_interval(tmp_path: Path) -> None:
    """A session with no stored end (the broker did not end its connection) has its whole interval from the start."""
    path = tmp_path / "edgemq.db"
    await leave_session(path, "crashed", 60)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as store:
        store.execute("UPDATE sessions SET ended_at = NULL")  # as a kill -9 while it was connected leaves it
    clock = ManualClock()
    async with running_broker(on_file(path), clock=clock) as broker:
        clock.advance(60 - 1)
        assert broker.state.client("crashed") is not None
        clock.advance(2)
        await wait_state(broker, lambda state: state.client("crashed") is None)


async def test_a_311_session_still_never_expires_after_a_restart(tmp_path: Path) -> None:
    """A persistent MQTT 3.1.1 session has no expiry in the store and is kept however long the clock runs."""
    path = tmp_path / "edgemq.db"
    async with running_broker(on_file(path)) as broker, RawClient.open(broker.mqtt_address) as client:
        assert await client.connack(encode_connect("old", clean_session=False)) == (0, 0)
        await client.send(encode_subscribe(1, ("old/#", 1)))
        assert (await client.read_packet())[0] >> 4 == SUBACK
    assert rows(path, "SELECT protocol, session_expiry, ended_at FROM sessions") == [(4, None, None)]
    clock = ManualClock()
    async with running_broker(on_file(path), clock=clock) as broker:
        clock.advance(10**9)
        assert broker.state.client("old") is not None
        assert clock.pending == 0  # nothing armed for it


async def test_a_copy_in_flight_before_a_restart_is_resent_with_the_identifier(tmp_path: Path) -> None:
    """A QoS 1 copy sent and not acknowledged before the restart is resent (DUP 1) with its identifier."""
    path = tmp_path / "edgemq.db"
    expiry = props(session_expiry_interval=300)
    async with running_broker(on_file(path)) as broker:
        async with connected(broker.mqtt_address, "ids", properties=expiry) as sub:
            await sub.subscribe(("ids/#", options(1)), properties=props(subscription_identifier=7))
            async with connected(broker.mqtt_address, "pub") as pub:
                await pub.publish_acked("ids/f", b"in flight")
            assert (await sub.expect(PUBLISH)).payload == b"in flight"  # and no PUBACK
            await sub.send(disconnect())
        await wait_state(broker, lambda state: state.counts().connections == 0)
    async with (
        running_broker(on_file(path)) as broker,
        connected(broker.mqtt_address, "ids", clean_start=False, properties=expiry) as sub,
    ):
        message = await sub.expect(PUBLISH)
        assert (message.payload, message.flags & 0x08) == (b"in flight", 0x08)
        assert message.properties.subscription_identifiers == [7]
        await sub.send(ack(PUBACK, message.packet_id))
