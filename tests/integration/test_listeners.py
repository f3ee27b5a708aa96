"""MQTT over TLS and WebSocket listeners, bound by edgemq on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from pathlib import Path

import aiomqtt
import httpx
import pytest
import trustme
import websockets
from websockets.typing import Subprotocol

from broker.config.settings import BrokerSettings
from broker.mqtt.encoding import encode_connect, encode_subscribe
from tests.helpers import WAIT, ephemeral_settings, mqtt_client, next_message, running_broker, wait_state

pytestmark = pytest.mark.anyio


def _tls_listener(tmp_path: Path) -> tuple[trustme.CA, dict[str, str]]:
    """A CA and an ssl listener on a free port with a certificate it issued for 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    return ca, {"bind": "127.0.0.1:0", "keyfile": str(tmp_path / "key.pem"), "certfile": str(tmp_path / "cert.pem")}


async def test_tls_listener(tmp_path: Path) -> None:
    """A client that trusts the listener's CA publishes and receives over TLS."""
    ca, tls = _tls_listener(tmp_path)
    async with running_broker(ephemeral_settings(listeners={"tcp": None, "ssl": tls})) as broker:
        host, port = broker.mqtt_addresses["ssl"]
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with aiomqtt.Client(host, port, identifier="tls-client", tls_context=context) as client:
            await client.subscribe("secure/#")
            await client.publish("secure/t", b"encrypted")
            assert (await next_message(client)).payload == b"encrypted"


async def test_websocket_listener() -> None:
    """A client connects over WebSocket at the configured path; other paths get 404."""
    listeners = {"ws": {"bind": "127.0.0.1:0/mqtt"}}
    async with running_broker(ephemeral_settings(listeners=listeners)) as broker:
        host, port = broker.mqtt_addresses["ws"]
        async with aiomqtt.Client(
            host, port, identifier="ws-client", transport="websockets", websocket_path="/mqtt"
        ) as client:
            await client.subscribe("web/#")
            await client.publish("web/t", b"over ws")
            assert (await next_message(client)).payload == b"over ws"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{host}:{port}/other")).status_code == 404


async def test_websocket_takeover_closes_the_old_connection(caplog: pytest.LogCaptureFixture) -> None:
    """A second WebSocket client with the same id takes over; the first one's reading ends at once."""
    caplog.set_level(logging.INFO, logger="edgemq.mqtt")
    listeners = {"ws": {"bind": "127.0.0.1:0/mqtt"}}
    async with running_broker(ephemeral_settings(listeners=listeners)) as broker:
        host, port = broker.mqtt_addresses["ws"]
        twin = functools.partial(
            aiomqtt.Client, host, port, identifier="ws-twin", transport="websockets", websocket_path="/mqtt"
        )
        async with twin() as first:
            await first.subscribe("web/#")
            async with twin() as second:
                await second.subscribe("web/#")
                await second.publish("web/t", b"taken over")
                assert (await next_message(second)).payload == b"taken over"
            with contextlib.suppress(aiomqtt.MqttError):
                await first.publish("web/t", b"too late")  # the first connection is gone
    prefix = "client disconnected: client_id=ws-twin "
    ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
    assert ends[0] == prefix + "reason=taken over by a new connection"  # the first connection's end


async def test_readyz_reflects_listeners() -> None:
    """/readyz is 200 while every listener accepts connections."""
    async with running_broker(ephemeral_settings(listeners={"ws": {"bind": "127.0.0.1:0/mqtt"}})) as broker:
        host, port = broker.http_address
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{host}:{port}/readyz")).status_code == 200


async def test_ready_line_lists_every_listener(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The ready line names every bound MQTT listener (tcp, ssl, ws with its path) and the admin API."""
    caplog.set_level(logging.INFO, logger="edgemq")
    _, tls = _tls_listener(tmp_path)
    listeners = {"ssl": tls, "ws": {"bind": "127.0.0.1:0/mqtt"}}
    async with running_broker(ephemeral_settings(listeners=listeners)) as broker:
        addresses = broker.mqtt_addresses
        expected = (
            f"edgemq ready: MQTT on mqtt://127.0.0.1:{addresses['tcp'][1]}, mqtts://127.0.0.1:{addresses['ssl'][1]}, "
            f"ws://127.0.0.1:{addresses['ws'][1]}/mqtt, admin API on {broker.api_url}, "
            f"dashboard on {broker.dashboard_url}"
        )
    assert expected in [r.getMessage() for r in caplog.records]


def _ws_listener() -> BrokerSettings:
    return ephemeral_settings(listeners={"ws": {"bind": "127.0.0.1:0/mqtt"}})


@pytest.mark.parametrize("offered", [["mqtt"], ["mqttv3.1"], ["chat", "mqttv3.1"], None])
async def test_websocket_subprotocols_as_mosquitto(offered: list[str] | None) -> None:
    """A WebSocket client offering mqtt, mqttv3.1 or no subprotocol at all gets its CONNACK."""
    async with running_broker(_ws_listener()) as broker:
        host, port = broker.mqtt_addresses["ws"]
        subprotocols = [Subprotocol(name) for name in offered] if offered else None
        async with websockets.connect(f"ws://{host}:{port}/mqtt", subprotocols=subprotocols) as ws:
            await ws.send(encode_connect("ws-subprotocol"))
            assert await asyncio.wait_for(ws.recv(), WAIT) == b"\x20\x02\x00\x00"


async def test_websocket_client_faults_are_info_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Bad handshakes (garbage, cut short, a foreign subprotocol) and a peer gone without a close
    frame while messages flow are INFO lines at most, never a WARNING or a traceback."""
    caplog.set_level(logging.INFO)
    async with running_broker(_ws_listener()) as broker:
        host, port = broker.mqtt_addresses["ws"]
        url = f"ws://{host}:{port}/mqtt"
        for request in (b"garbage\r\n\r\n", b"GET /mqtt HTTP/1.1\r\nHost: x\r\n"):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url, subprotocols=[Subprotocol("chat")])
        ws = await websockets.connect(url, subprotocols=[Subprotocol("mqtt")])
        await ws.send(encode_connect("ws-gone") + encode_subscribe(1, ("gone/#", 1)))
        await asyncio.wait_for(ws.recv(), WAIT)  # CONNACK
        await asyncio.wait_for(ws.recv(), WAIT)  # SUBACK
        async with mqtt_client(broker, "pub") as pub:
            await pub.publish("gone/1", b"x" * 1000, qos=1)
            ws.transport.abort()
            for _ in range(20):
                await pub.publish("gone/1", b"x" * 1000, qos=1)
        await wait_state(broker, lambda s: s.client("ws-gone") is None)
    handshakes = [r for r in caplog.records if r.getMessage().startswith("websocket handshake failed: ")]
    assert len(handshakes) == 3
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


async def test_mqtt31_over_websocket_gets_no_session_present_flag() -> None:
    """An MQTT 3.1 client resuming its session over WebSocket gets CONNACK byte 2 = 0 (reserved in 3.1)."""
    async with running_broker(_ws_listener()) as broker:
        host, port = broker.mqtt_addresses["ws"]
        url = f"ws://{host}:{port}/mqtt"
        hello = encode_connect("old-ws", clean_session=False, protocol_name="MQIsdp", level=3)
        for _ in range(2):  # the second CONNECT resumes the session
            async with websockets.connect(url, subprotocols=[Subprotocol("mqttv3.1")]) as ws:
                await ws.send(hello)
                assert await asyncio.wait_for(ws.recv(), WAIT) == b"\x20\x02\x00\x00"
