"""Bridges under real faults (issue 15): a real mosquitto upstream, a proxy that cuts, black-holes or
refuses the link, the ``edgemq`` process killed with a backlog; every numbered message is checked
for loss, duplication and order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from broker import EdgeBroker
from broker.mqtt.encoding import encode_connect, encode_subscribe
from broker.testing.helpers import wait_until
from tests.helpers import WAIT, running_broker
from tests.integration.bridge_runs import (
    UNBOUNDED,
    Publisher,
    Verdict,
    bridge_conf,
    collect,
    judge,
    kill_while_draining,
    numbers_of,
    publish_pipelined,
    read_until_closed,
    tls_subscriber,
    watching,
)
from tests.integration.durability_runs import edgemq
from tests.integration.test_bridges import SUBACK, bridge_connected, bridged, upstream_subscriber
from tests.integration.test_persistence import publish_acknowledged, publish_fields
from tests.link_proxy import LinkProxy
from tests.mqtt_packets import RawClient
from tests.upstream import mosquitto_upstream

pytestmark = pytest.mark.anyio

PUBACK = 4
PUBLISH_QOS0 = 3 << 4


def bridge_state(broker: EdgeBroker) -> str:
    return broker.state.bridges()[0].state


async def bridge_down(broker: EdgeBroker, timeout: float = WAIT) -> None:
    """Wait until the bridge's link is no longer up."""
    await wait_until(broker.state, lambda s: s.bridges()[0].state != "connected", timeout)


async def never_connected(broker: EdgeBroker, timeout: float) -> bool:
    """Whether the bridge stays unconnected for ``timeout`` seconds."""
    try:
        await bridge_connected(broker, timeout)
    except TimeoutError:
        return True
    return False


async def local_round_trip(broker: EdgeBroker) -> None:
    """A local QoS 1 publish reaches a local subscriber: the broker serves."""
    async with RawClient.open(broker.mqtt_address) as listener, RawClient.open(broker.mqtt_address) as talker:
        assert await listener.connack(encode_connect("local-listener")) == (0, 0)
        await listener.send(encode_subscribe(1, ("local/#", 1)))
        assert (await listener.read_packet())[0] >> 4 == SUBACK
        assert await talker.connack(encode_connect("local-talker")) == (0, 0)
        await publish_acknowledged(talker, "local/ping", b"still serving", 1, 1)
        first, body = await listener.read_packet()
        assert publish_fields(body, first)[:2] == ("local/ping", b"still serving")


async def test_upstream_restart_mid_stream_loses_nothing_edgemq_still_held(tmp_path: Path) -> None:
    """mosquitto killed and restarted under a steady publisher: all it had not acknowledged arrives, in order."""
    async with (
        mosquitto_upstream(tmp_path, config=UNBOUNDED) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        running_broker(bridged(proxy.address, max_send_queue_len=1_000_000)) as broker,
        contextlib.AsyncExitStack() as stack,
    ):
        before = await stack.enter_async_context(upstream_subscriber(upstream, "cloud", "edge/#"))
        reading = asyncio.create_task(read_until_closed(before))
        await bridge_connected(broker)
        publisher = Publisher(broker.mqtt_address)
        publisher.start()
        await publisher.reached(300)
        await upstream.stop()
        await bridge_down(broker)
        handed_over = broker.state.bridges()[0].forwarded  # acknowledged by mosquitto: numbers below this
        proxy.refuse()  # the bridge waits until the new subscriber is on the restarted mosquitto
        await reading
        await publisher.reached(publisher.acked + 300)
        await upstream.start()
        after = await stack.enter_async_context(upstream_subscriber(upstream, "cloud", "edge/#"))
        proxy.restore()
        await bridge_connected(broker)
        await publisher.reached(publisher.acked + 300)
        published = await publisher.stop()
        await collect(after, range(handed_over, published))
        await stack.aclose()
        await upstream.stop()  # inside the broker's block: its log reader, started in it, ends in it
    arrived = numbers_of(before.payloads + after.payloads)
    verdict = judge(arrived, range(handed_over, published), range(published))
    lost_by_mosquitto = sorted(set(range(handed_over)) - set(arrived))
    print(f"\n{published} published, {handed_over} acknowledged by mosquitto before it died, "
          f"{len(lost_by_mosquitto)} of those lost with its memory, {len(verdict.duplicates)} duplicates")  # fmt: skip
    assert (verdict.missing, verdict.out_of_order, verdict.unknown) == ([], False, [])
    assert verdict.duplicates == [] or max(verdict.duplicates) < handed_over + 256  # only the window in flight


async def test_a_silent_link_is_dropped_by_keepalive_and_the_queue_follows_in_order(tmp_path: Path) -> None:
    """A black-holed link is given up within 1.5x keep-alive; what was published meanwhile arrives once, in order."""
    keepalive = 2
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(bridged(proxy.address, keepalive=keepalive)) as broker,
        RawClient.open(broker.mqtt_address) as device,
    ):
        await bridge_connected(broker)
        assert await device.connack(encode_connect("device")) == (0, 0)
        for n in range(50):
            await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
        await collect(cloud, range(50))
        proxy.blackhole()
        silent_since = time.monotonic()
        in_flight_at_cut = broker.state.bridges()[0].in_flight
        for n in range(50, 150):
            await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
        await bridge_down(broker, 1.5 * keepalive + 1.0)  # 1.5x since the last packet read, read before the cut
        noticed_after = time.monotonic() - silent_since
        proxy.cut()  # the link comes back: attempts made into the black hole end, new ones pass
        proxy.restore()
        for n in range(150, 250):
            await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
        await collect(cloud, range(250))
    verdict = judge(numbers_of(cloud.payloads), range(250), range(250))
    print(f"\nsilent link noticed after {noticed_after:.2f}s (keep-alive {keepalive}s); "
          f"{in_flight_at_cut} in flight at the cut, {len(verdict.duplicates)} duplicates")  # fmt: skip
    assert (verdict.missing, verdict.out_of_order, verdict.unknown) == ([], False, [])
    assert len(verdict.duplicates) <= in_flight_at_cut
    assert all(n < 50 for n in verdict.duplicates)  # only messages sent before the cut come twice


async def test_kill_9_of_the_edgemq_process_keeps_the_bridge_backlog(tmp_path: Path) -> None:
    """``edgemq`` killed with 300 acknowledged messages queued for a refused link: after a restart all arrive."""
    count = 300
    async with mosquitto_upstream(tmp_path) as upstream, LinkProxy(upstream.address).running() as proxy:
        proxy.refuse()
        conf = bridge_conf(tmp_path, tmp_path / "edgemq.db", proxy.address)
        async with edgemq(conf) as broker:
            async with RawClient.open(broker.mqtt) as device:
                assert await device.connack(encode_connect("device")) == (0, 0)
                for n in range(count):
                    await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
            broker.signal(signal.SIGKILL)
            assert await broker.exit_code() == -9
        proxy.restore()
        async with upstream_subscriber(upstream, "cloud", "edge/#") as cloud, edgemq(conf):
            await collect(cloud, range(count))
    verdict = judge(numbers_of(cloud.payloads), range(count), range(count))
    assert verdict == Verdict()  # nothing missing, duplicated, out of order or unknown


async def test_kill_9_while_the_backlog_drains_loses_nothing(tmp_path: Path) -> None:
    """``edgemq`` killed while it sends its backlog: after a restart the rest arrives, in order; repeats counted."""
    run = await kill_while_draining(tmp_path, 2000, 500)
    print(f"\n{run.before_kill} arrived before the kill; {len(run.verdict.duplicates)} sent again after the restart")
    assert (run.verdict.missing, run.verdict.out_of_order, run.verdict.unknown) == ([], False, [])


async def test_a_backlog_drains_at_once_without_new_traffic(tmp_path: Path) -> None:
    """20 000 QoS 1 messages queued for a refused link all arrive in order once it passes, nothing new published."""
    count = 20_000
    async with (
        mosquitto_upstream(tmp_path, config=UNBOUNDED) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        upstream_subscriber(upstream, "cloud", "edge/#") as cloud,
        running_broker(bridged(proxy.address)) as broker,
    ):
        proxy.refuse()
        await publish_pipelined(broker.mqtt_address, count)
        assert broker.state.bridges()[0].queued == count
        proxy.restore()
        await bridge_connected(broker, timeout=20.0)
        connected_at = time.monotonic()
        await collect(cloud, range(count), timeout=40.0)
        drained_in = time.monotonic() - connected_at
    verdict = judge(numbers_of(cloud.payloads), range(count), range(count))
    rate = count / drained_in
    print(f"\nbacklog of {count}: delivered upstream {drained_in:.2f}s after the reconnect ({rate:.0f} msg/s)")
    assert verdict == Verdict()


async def test_commands_published_upstream_during_a_cut_arrive_after_reconnect(tmp_path: Path) -> None:
    """Commands the upstream keeps for the bridge's session while the link is down reach local subscribers, in order."""
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        LinkProxy(upstream.address).running() as proxy,
        running_broker(bridged(proxy.address, clean_start=False)) as broker,
        RawClient.open(broker.mqtt_address) as device,
        RawClient.open(upstream.address) as operator,
    ):
        assert await device.connack(encode_connect("device", clean_session=False)) == (0, 0)
        await device.send(encode_subscribe(1, ("commands/#", 1)))
        assert (await device.read_packet())[0] >> 4 == SUBACK
        await bridge_connected(broker)  # subscribed upstream with QoS 1
        proxy.refuse()
        proxy.cut()
        await bridge_down(broker)
        assert await operator.connack(encode_connect("operator")) == (0, 0)
        for n in range(100):
            await publish_acknowledged(operator, f"cmd/{n % 3}", b"%d" % n, 1, n + 1)
        proxy.restore()
        received: list[tuple[str, bytes]] = []
        async with asyncio.timeout(20.0):
            while len(received) < 100:
                first, body = await device.read_packet(20.0)
                topic, payload, packet_id, _ = publish_fields(body, first)
                await device.send(bytes((PUBACK << 4, 2)) + packet_id.to_bytes(2, "big"))
                received.append((topic, payload))
    verdict = judge(numbers_of(p for _, p in received), range(100), range(100))
    assert verdict == Verdict()
    assert all(topic == f"commands/{int(payload) % 3}" for topic, payload in received)


async def test_forwarding_over_tls_with_the_right_ca(tmp_path: Path) -> None:
    """A tls+mqtt-tcp:// bridge that trusts the upstream's CA connects and forwards in order."""
    async with mosquitto_upstream(tmp_path, tls=True) as upstream, tls_subscriber(upstream, "cloud", "edge/#") as cloud:
        host, port = upstream.address
        settings = bridged(
            upstream.address, server=f"tls+mqtt-tcp://{host}:{port}", ssl={"cacertfile": str(upstream.ca_path)}
        )
        async with running_broker(settings) as broker, RawClient.open(broker.mqtt_address) as device:
            await bridge_connected(broker)
            assert await device.connack(encode_connect("device")) == (0, 0)
            for n in range(100):
                await publish_acknowledged(device, "up/seq", b"%d" % n, 1, n + 1)
            await collect(cloud, range(100))
    assert judge(numbers_of(cloud.payloads), range(100), range(100)) == Verdict()


async def test_a_wrong_ca_is_logged_retried_and_the_broker_keeps_serving(tmp_path: Path) -> None:
    """A server certificate from another CA: a log line naming the certificate failure, retries, local traffic flows."""
    async with mosquitto_upstream(tmp_path, tls=True) as upstream, LinkProxy(upstream.address).running() as proxy:
        host, port = proxy.address
        settings = bridged(
            proxy.address, server=f"tls+mqtt-tcp://{host}:{port}", ssl={"cacertfile": str(upstream.wrong_ca_path)}
        )
        with watching() as log:
            async with running_broker(settings) as broker:
                line = await log.wait_for(r"bridge up: cannot connect .*TLS.*(?i:certificate)")
                await proxy.wait_connections(3)  # it keeps trying
                await local_round_trip(broker)
                assert await never_connected(broker, 2.0)
                assert "TLS" in (broker.state.bridges()[0].last_error or "")
    assert line.startswith("WARNING"), line


async def test_a_wrong_password_is_logged_and_retried_and_the_right_one_connects(tmp_path: Path) -> None:
    """Bad credentials: a log line with the CONNACK code, retries, no link; the right password connects."""
    async with (
        mosquitto_upstream(tmp_path, users={"bridge": "right"}) as upstream,
        LinkProxy(upstream.address).running() as proxy,
    ):
        with watching() as log:
            async with running_broker(bridged(proxy.address, username="bridge", password="wrong")) as broker:
                line = await log.wait_for(r"bridge up: cannot connect .*CONNACK [45]\b")
                await proxy.wait_connections(3)
                await local_round_trip(broker)
                assert await never_connected(broker, 1.0)
        assert "wrong" not in "\n".join(log.messages)  # the password is never logged
        async with running_broker(bridged(proxy.address, username="bridge", password="right")) as broker:
            await bridge_connected(broker)
    assert line.startswith("WARNING"), line


async def test_a_message_from_the_upstream_is_not_forwarded_back(tmp_path: Path) -> None:
    """Forwards and subscription on the same topics: each message reaches the upstream exactly once."""
    rules: dict[str, Any] = {
        "forwards": [{"local_topic": "x/#", "remote_topic": "x/#", "qos": 1}],
        "subscription": [{"remote_topic": "x/#", "local_topic": "x/#", "qos": 1}],
    }
    async with (
        mosquitto_upstream(tmp_path) as upstream,
        upstream_subscriber(upstream, "cloud", "x/#") as cloud,
        running_broker(bridged(upstream.address, **rules)) as broker,
        RawClient.open(broker.mqtt_address) as device,
        RawClient.open(broker.mqtt_address) as local,
        RawClient.open(upstream.address) as operator,
    ):
        assert await device.connack(encode_connect("device")) == (0, 0)
        await device.send(encode_subscribe(1, ("x/#", 0)))
        assert (await device.read_packet())[0] >> 4 == SUBACK
        assert await local.connack(encode_connect("local")) == (0, 0)
        await bridge_connected(broker)
        assert await operator.connack(encode_connect("operator")) == (0, 0)
        await publish_acknowledged(operator, "x/from-cloud", b"cloud", 1, 1)
        assert await device.read_packet() == (PUBLISH_QOS0, b"\x00\x0cx/from-cloudcloud")
        # a local marker is queued behind any echo of the first message; it comes back once and stops there
        await publish_acknowledged(local, "x/marker", b"m1", 1, 1)
        await cloud.until(b"m1")
        marker = (PUBLISH_QOS0, b"\x00\x08x/markerm1")
        assert [await device.read_packet(), await device.read_packet()] == [marker, marker]  # local, brought back
        await publish_acknowledged(local, "x/marker", b"m2", 1, 2)
        await cloud.until(b"m2")
    assert cloud.payloads == [b"cloud", b"m1", b"m2"]
