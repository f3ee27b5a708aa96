"""NanoMQ's ``auth.http_auth`` against a real HTTP server: CONNECTs (auth_req), superusers
(super_req) and PUBLISH/SUBSCRIBE (acl_req); a server that refuses, abstains, is down or hangs."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from broker.cli import main
from broker.mqtt.encoding import encode_connect, encode_publish, encode_subscribe
from tests.auth_server import AuthServer, auth_server
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker
from tests.integration.test_plugin_auth import connack_code
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio

FORM = {"content-type": "application/x-www-form-urlencoded"}
AUTH_PARAMS = {"clientid": "%c", "username": "%u", "password": "%P", "ipaddress": "%a"}
ACL_PARAMS = {"clientid": "%c", "username": "%u", "access": "%A", "topic": "%t"}


def acl_req(server: AuthServer) -> dict[str, Any]:
    """An ``acl_req`` asking ``server``'s /mqtt/acl with NanoMQ's ACL parameters."""
    return {"url": f"{server.url}/mqtt/acl", "params": ACL_PARAMS}


def http_auth(server: AuthServer, **options: Any) -> dict[str, Any]:
    """``auth`` settings sending auth_req (and what ``options`` adds) to ``server``."""
    request = {"url": f"{server.url}/mqtt/auth", "method": "POST", "headers": FORM, "params": AUTH_PARAMS}
    return {"http_auth": {"auth_req": request} | options}


async def test_the_server_allows_and_refuses_connects() -> None:
    """2xx admits, 4xx refuses; the request carries NanoMQ's placeholders filled in."""
    async with auth_server() as server:
        server.answers[("/mqtt/auth", "mallory")] = (403, "")
        async with running_broker(ephemeral_settings(auth=http_auth(server))) as broker:
            assert await connack_code(broker, "c1", "alice", "s3cret") == 0
            assert await connack_code(broker, "c2", "mallory", "pw") == 5
    assert server.requests[0] == (
        "/mqtt/auth",
        FORM["content-type"],
        {"clientid": "c1", "username": "alice", "password": "s3cret", "ipaddress": "127.0.0.1"},
    )


async def test_an_ignore_answer_leaves_the_decision_to_edgemq() -> None:
    """A 2xx "ignore" abstains: the password list decides."""
    async with auth_server() as server:
        server.answers[("/mqtt/auth", "alice")] = (200, "ignore")
        auth = http_auth(server) | {"allow_anonymous": False, "password": {"alice": "right"}, "plugin_mode": "decide"}
        async with running_broker(ephemeral_settings(auth=auth)) as broker:
            assert await connack_code(broker, "a", "alice", "right") == 0
            assert await connack_code(broker, "a", "alice", "wrong") == 5


async def test_json_content_type_sends_a_json_body() -> None:
    """headers.content-type = application/json: the parameters go as a JSON object."""
    async with auth_server() as server:
        auth = http_auth(server)
        auth["http_auth"]["auth_req"]["headers"] = {"content-type": "application/json"}
        async with running_broker(ephemeral_settings(auth=auth)) as broker:
            assert await connack_code(broker, "c1", "alice", "pw") == 0
    assert server.requests[0][1] == "application/json"
    assert server.requests[0][2]["username"] == "alice"


async def test_a_get_request_sends_a_query_and_no_password_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """method = get: the parameters go as a query; at DEBUG, no log record holds the password."""
    async with auth_server() as server:
        auth = http_auth(server)
        auth["http_auth"]["auth_req"]["method"] = "get"
        with caplog.at_level(logging.DEBUG):
            async with running_broker(ephemeral_settings(auth=auth)) as broker:
                assert await connack_code(broker, "c1", "alice", "TOPSECRET") == 0
    assert server.requests[0][2]["password"] == "TOPSECRET"
    assert caplog.records
    assert not [r for r in caplog.records if "TOPSECRET" in r.getMessage()]


async def test_a_server_error_refuses_but_is_not_kept() -> None:
    """A 5xx from acl_req refuses that PUBLISH; once the server answers again, the next one is asked."""
    async with auth_server() as server:
        server.answers[("/mqtt/acl", "dev")] = (503, "")
        acl = acl_req(server)
        async with (
            running_broker(ephemeral_settings(auth=http_auth(server, acl_req=acl))) as broker,
            mqtt_client(broker, "w") as watcher,
            mqtt_client(broker, "d", username="dev") as dev,
        ):
            await watcher.subscribe("data/#")
            await dev.publish("data/d", b"refused", qos=1)
            del server.answers[("/mqtt/acl", "dev")]
            await dev.publish("data/d", b"allowed", qos=1)
            assert (await next_message(watcher)).payload == b"allowed"
    asked = [p["topic"] for path, _, p in server.requests if path == "/mqtt/acl" and p.get("username") == "dev"]
    assert asked == ["data/d", "data/d"]


async def test_a_server_that_is_down_refuses(caplog: pytest.LogCaptureFixture) -> None:
    """No server at the URL: CONNACK 5 (fail closed), a WARNING naming the URL."""
    with socket.socket() as closed, caplog.at_level(logging.WARNING, logger="edgemq.mqtt"):
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = closed.getsockname()[1]
        request = {"url": f"http://127.0.0.1:{port}/auth", "params": AUTH_PARAMS}
        settings = ephemeral_settings(auth={"http_auth": {"auth_req": request, "connect_timeout": 0.5}})
        async with running_broker(settings) as broker:
            assert await connack_code(broker, "c1", "alice", "pw") == 5
    assert any(f"127.0.0.1:{port}/auth" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


async def test_a_server_that_hangs_refuses_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A server that never answers: CONNACK 5 once http_auth.timeout passed, never a stuck CONNECT."""
    async with auth_server() as server:
        server.hang = True
        with caplog.at_level(logging.WARNING, logger="edgemq.mqtt"):
            async with running_broker(ephemeral_settings(auth=http_auth(server, timeout=0.3))) as broker:
                assert await connack_code(broker, "c1", "alice", "pw") == 5
                server.released.set()  # the server's request task ends with the broker's test
    assert any("ReadTimeout" in r.getMessage() for r in caplog.records)


async def test_acl_req_decides_publish_and_subscribe() -> None:
    """acl_req: a refused SUBSCRIBE gets 0x80, a refused PUBLISH is not delivered; %A is 1 or 2."""
    async with auth_server() as server:
        server.answers[("/mqtt/acl", "dev")] = (403, "")
        acl = acl_req(server)
        async with (
            running_broker(ephemeral_settings(auth=http_auth(server, acl_req=acl))) as broker,
            mqtt_client(broker, "watcher", username="ops") as watcher,
        ):
            await watcher.subscribe("#")
            async with RawClient.open(broker.mqtt_address) as raw:
                assert await raw.connack(encode_connect("d", username="dev", password="pw")) == (0, 0)
                await raw.send(encode_subscribe(1, ("cmd/d", 0)))
                assert await raw.read_packet() == (0x90, b"\x00\x01\x80")
                await raw.send(encode_publish("data/d", b"refused"))
            async with mqtt_client(broker, "ops2", username="ops") as ops:
                await ops.publish("data/ops", b"allowed")
            message = await next_message(watcher)
            assert (str(message.topic), message.payload) == ("data/ops", b"allowed")
    acl_asked = [(p["username"], p["access"], p["topic"]) for path, _, p in server.requests if path == "/mqtt/acl"]
    assert ("dev", "1", "cmd/d") in acl_asked
    assert ("dev", "2", "data/d") in acl_asked


async def test_a_superuser_is_not_asked_about_topics() -> None:
    """super_req answering 2xx: that client's PUBLISH/SUBSCRIBE skip acl_req."""
    async with auth_server() as server:
        server.answers[("/mqtt/superuser", "dev")] = (403, "")
        server.answers[("/mqtt/acl", "dev")] = (403, "")
        server.answers[("/mqtt/acl", "root")] = (403, "")
        super_req = {"url": f"{server.url}/mqtt/superuser", "params": {"username": "%u"}}
        acl = acl_req(server)
        settings = ephemeral_settings(auth=http_auth(server, super_req=super_req, acl_req=acl))
        async with running_broker(settings) as broker, mqtt_client(broker, "r", username="root") as root:
            await root.subscribe("any/#")
            await root.publish("any/1", b"x")
            assert (await next_message(root)).payload == b"x"
    assert not [p for path, _, p in server.requests if path == "/mqtt/acl" and p["username"] == "root"]


def test_a_nanomq_http_auth_file_checks_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """NanoMQ's documented http_auth block (dotted header key, upper-case method, 5s) is valid."""
    conf = tmp_path / "nanomq.conf"
    conf.write_text(
        "auth {\n  allow_anonymous = true\n  http_auth = {\n    auth_req {\n"
        '      url = "http://127.0.0.1:80/mqtt/auth"\n      method = "POST"\n'
        '      headers.content-type = "application/x-www-form-urlencoded"\n'
        '      params = {clientid = "%c", username = "%u", password = "%P"}\n    }\n'
        "    timeout = 5s\n    connect_timeout = 5s\n    pool_size = 32\n  }\n}\n"
    )
    assert main(["check-config", str(conf)]) == 0, capsys.readouterr().err


async def test_a_superuser_taking_over_its_client_id_stays_one() -> None:
    """A superuser connecting again with its client id (take-over) is still not asked about topics."""
    async with auth_server() as server:
        server.answers[("/mqtt/acl", "root")] = (403, "")
        super_req = {"url": f"{server.url}/mqtt/superuser", "params": {"username": "%u"}}
        acl = acl_req(server)
        settings = ephemeral_settings(auth=http_auth(server, super_req=super_req, acl_req=acl))
        async with (
            running_broker(settings) as broker,
            mqtt_client(broker, "r", username="root"),
            mqtt_client(broker, "r", username="root") as again,  # ends the first connection
        ):
            await again.subscribe("any/#")
            await again.publish("any/1", b"x")
            assert (await next_message(again)).payload == b"x"
