"""The bridge tests' infrastructure: a real mosquitto upstream, and LinkProxy's link faults."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.mqtt.encoding import PINGREQ, encode_connect
from tests.link_proxy import LinkProxy
from tests.mqtt_packets import RawClient
from tests.upstream import Upstream, mosquitto_upstream

pytestmark = pytest.mark.anyio

SILENCE = 1.0  # seconds a black-holed link is watched for an answer


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    async with mosquitto_upstream(tmp_path) as running:
        yield running


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[LinkProxy]:
    async with LinkProxy(upstream.address).running() as running:
        yield running


async def _connack(
    address: tuple[str, int], client_id: str, username: str | None = None, password: str | None = None
) -> int:
    """The return code of the CONNACK that a CONNECT to ``address`` gets."""
    async with RawClient.open(address) as client:
        return (await client.connack(encode_connect(client_id, username=username, password=password)))[1]


async def test_proxy_passes_connect_and_connack(proxy: LinkProxy) -> None:
    """A CONNECT through the proxy reaches mosquitto and its CONNACK comes back; the link is counted."""
    assert await _connack(proxy.address, "through") == 0
    await proxy.wait_connections(1)
    assert proxy.connections == 1


async def test_wait_connections_times_out_with_the_count(proxy: LinkProxy) -> None:
    """wait_connections says how many connections arrived when fewer than asked for did."""
    with pytest.raises(TimeoutError, match=re.escape("0 of 1 connections accepted within 0.05s")):
        await proxy.wait_connections(1, timeout=0.05)


async def test_cut_resets_current_links(proxy: LinkProxy) -> None:
    """cut() closes a current link with RST: the client reads a connection reset, not an end of stream."""
    async with RawClient.open(proxy.address) as client:
        assert (await client.connack(encode_connect("cut")))[1] == 0
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            await client.reader.read(1)


async def test_connections_after_cut_pass(proxy: LinkProxy) -> None:
    """After cut() a new connection passes."""
    async with RawClient.open(proxy.address) as client:
        await client.connack(encode_connect("first"))
        proxy.cut()
    assert await _connack(proxy.address, "second") == 0


async def test_blackhole_silences_current_links(proxy: LinkProxy) -> None:
    """After blackhole() a PINGREQ gets no PINGRESP while the socket stays open."""
    async with RawClient.open(proxy.address) as client:
        await client.connack(encode_connect("silent"))
        proxy.blackhole()
        await client.send(PINGREQ)
        with pytest.raises(TimeoutError):
            await client.read_packet(timeout=SILENCE)
        assert not client.reader.at_eof()
        assert not client.writer.is_closing()


async def test_restore_passes_new_links_and_keeps_blackholed_ones_silent(proxy: LinkProxy) -> None:
    """After blackhole() a new connection is accepted but never answered; after restore() a new one
    passes while the black-holed link stays silent."""
    async with RawClient.open(proxy.address) as old:
        await old.connack(encode_connect("old"))
        proxy.blackhole()
        async with RawClient.open(proxy.address) as unanswered:
            await unanswered.send(encode_connect("unanswered"))
            await proxy.wait_connections(2)
            proxy.restore()
            assert await _connack(proxy.address, "new") == 0
            await old.send(PINGREQ)
            with pytest.raises(TimeoutError):
                await unanswered.read_packet(timeout=SILENCE)
            with pytest.raises(TimeoutError):
                await old.read_packet(timeout=0.1)


async def test_refuse_resets_new_connections(proxy: LinkProxy) -> None:
    """After refuse() a new connection is reset at once while a current link goes on."""
    async with RawClient.open(proxy.address) as current:
        await current.connack(encode_connect("current"))
        proxy.refuse()
        async with RawClient.open(proxy.address) as refused:
            with pytest.raises(ConnectionResetError):
                await refused.reader.read(1)
        await current.send(PINGREQ)
        assert (await current.read_packet())[0] == 0xD0


async def test_upstream_restarts_on_the_same_port(upstream: Upstream, proxy: LinkProxy) -> None:
    """stop() closes the upstream's connections and its port; start() serves on the same port again,
    also while one of its closed connections is in TIME_WAIT."""
    address = upstream.address
    async with RawClient.open(address) as client:
        await client.connack(encode_connect("before"))
        await upstream.stop()
        assert await client.closed_by_peer()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*address)
    await upstream.start()
    assert upstream.address == address
    assert await _connack(address, "after") == 0


async def test_proxy_resets_clients_while_the_upstream_is_down(upstream: Upstream, proxy: LinkProxy) -> None:
    """With the upstream stopped, a connection through the proxy is reset as a refused one would be."""
    await upstream.stop()
    async with RawClient.open(proxy.address) as client:
        with pytest.raises(ConnectionResetError):
            await client.reader.read(1)


async def _tls_connack(upstream: Upstream, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    reader, writer = await asyncio.open_connection(*upstream.address, ssl=context, server_hostname="localhost")
    client = RawClient(reader, writer)
    try:
        return (await client.connack(encode_connect("tls")))[1]
    finally:
        await client.close()


async def test_tls_upstream_is_verified_with_its_ca(tmp_path: Path) -> None:
    """A TLS client that trusts ca_path connects; one that trusts wrong_ca_path fails verification."""
    async with mosquitto_upstream(tmp_path, tls=True) as upstream:
        assert await _tls_connack(upstream, upstream.ca_path) == 0
        with pytest.raises(ssl.SSLCertVerificationError):
            await _tls_connack(upstream, upstream.wrong_ca_path)


async def test_upstream_with_users_checks_passwords(tmp_path: Path) -> None:
    """With users, the right password is accepted and a wrong one gets CONNACK 5 (not authorized)."""
    async with mosquitto_upstream(tmp_path, users={"bridge": "s3cret"}) as upstream:
        assert await _connack(upstream.address, "right", username="bridge", password="s3cret") == 0
        assert await _connack(upstream.address, "wrong", username="bridge", password="guess") == 5


async def test_ca_files_need_tls(upstream: Upstream) -> None:
    """Without tls=True asking for the CA files says how to get them."""
    with pytest.raises(RuntimeError, match="tls=True"):
        _ = upstream.ca_path
