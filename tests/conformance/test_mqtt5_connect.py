"""MQTT 5.0 CONNECT and CONNACK: reason codes, the limits the broker announces, assigned client
identifiers, authentication methods, problem information, and 3.1.1 clients beside v5 ones.

Statement ids and sections refer to OASIS MQTT Version 5.0.
"""

from __future__ import annotations

import pytest

from broker.mqtt.encoding import encode_connect, encode_unsubscribe
from tests.conformance.conftest import StartTarget, Target
from tests.helpers import WAIT
from tests.mqtt5_packets import PUBACK, UNSUBACK, V5Client, connected, options, props, publish, unsubscribe
from tests.mqtt_packets import RawClient

pytestmark = pytest.mark.anyio


async def test_connack_is_a_v5_connack(target: Target) -> None:
    """3.2.2: a v5 CONNECT gets reason code 0x00, session present 0 and a block of CONNACK properties."""
    async with V5Client.open(target.address) as client:
        connack = await client.connect("v5-basic")  # parse() checks each property is allowed in CONNACK
        assert (connack.reason, connack.session_present) == (0x00, False)
        assert len(connack.body) > 2  # the property block follows the reason code


async def test_connack_announces_the_topic_alias_maximum(start_target: StartTarget) -> None:
    """MQTT-3.2.2-17 (3.2.2.3.8): the CONNACK carries the configured Topic Alias Maximum."""
    async with start_target(topic_alias_maximum=5) as target, V5Client.open(target.address) as client:
        assert (await client.connect("alias-max")).properties.get("topic_alias_maximum") == 5


async def test_connack_announces_the_receive_maximum(start_target: StartTarget) -> None:
    """3.2.2.3.3: the CONNACK carries the configured Receive Maximum."""
    async with start_target(receive_maximum=7) as target, V5Client.open(target.address) as client:
        assert (await client.connect("receive-max")).properties.get("receive_maximum") == 7


async def test_connack_announces_the_maximum_packet_size(start_target: StartTarget) -> None:
    """3.2.2.3.6: the CONNACK carries the configured Maximum Packet Size."""
    async with start_target(max_packet_size=4096) as target, V5Client.open(target.address) as client:
        assert (await client.connect("packet-max")).properties.get("maximum_packet_size") == 4096


async def test_server_keep_alive_caps_a_longer_keep_alive(start_target: StartTarget) -> None:
    """MQTT-3.2.2-21 (3.2.2.3.14): a keep alive over the broker's maximum gets Server Keep Alive = the maximum."""
    async with start_target(max_keepalive=10) as target, V5Client.open(target.address) as client:
        assert (await client.connect("keep-long", keep_alive=60)).properties.get("server_keep_alive") == 10


async def test_a_keep_alive_within_the_maximum_is_kept(start_target: StartTarget) -> None:
    """MQTT-3.2.2-22: a keep alive within the maximum stands: no Server Keep Alive, or the same value."""
    async with start_target(max_keepalive=10) as target, V5Client.open(target.address) as client:
        assert (await client.connect("keep-short", keep_alive=5)).properties.get("server_keep_alive") in (None, 5)


async def test_an_empty_client_id_gets_an_assigned_identifier(target: Target) -> None:
    """MQTT-3.1.3-6, MQTT-3.2.2-16: an empty client id is accepted and the CONNACK assigns a unique one."""
    async with V5Client.open(target.address) as first, V5Client.open(target.address) as second:
        one = (await first.connect("")).properties.get("assigned_client_identifier")
        two = (await second.connect("")).properties.get("assigned_client_identifier")
    assert isinstance(one, str)
    assert isinstance(two, str)
    assert one
    assert one != two


async def test_an_authentication_method_is_refused_with_0x8c(target: Target) -> None:
    """MQTT-4.12.0-1: a CONNECT with an authentication method the broker lacks gets CONNACK 0x8C and a close."""
    async with V5Client.open(target.address) as client:
        connack = await client.connect("auth", properties=props(authentication_method="SCRAM-SHA-1"))
        assert connack.reason == 0x8C
        assert await client.closed_by_peer()


async def test_no_reason_string_when_problem_information_is_not_requested(target: Target) -> None:
    """MQTT-3.1.2-29: Request Problem Information 0: no reason string or user property in SUBACK, UNSUBACK, PUBACK."""
    async with connected(target.address, "quiet", properties=props(request_problem_information=0)) as client:
        answers = [await client.subscribe(("quiet/t", options(1)), packet_id=1)]
        await client.send(unsubscribe(2, "never/subscribed"))
        answers.append(await client.expect(UNSUBACK))
        await client.send(publish("nobody/listens", b"x", qos=1, packet_id=3))
        answers.append(await client.expect(PUBACK))
    for answer in answers:
        assert answer.properties.get("reason_string") is None, answer.describe()
        assert not answer.properties.user_properties, answer.describe()


async def test_a_311_client_beside_v5_clients_gets_311_answers(target: Target) -> None:
    """3.1.1 clients are unchanged beside a v5 one: a two-byte CONNACK, an UNSUBACK without reason codes."""
    async with connected(target.address, "v5-neighbour"), RawClient.open(target.address) as old:
        await old.send(encode_connect("v311-neighbour"))
        assert await old.read_packet() == (0x20, b"\x00\x00")
        await old.send(encode_unsubscribe(4, "none"))
        assert await old.read_packet() == (0xB0, b"\x00\x04")  # 3.1.1 UNSUBACK: no reason codes


async def test_the_server_keep_alive_is_enforced(start_target: StartTarget, request: pytest.FixtureRequest) -> None:
    """MQTT-3.2.2-21, 3.1.2.10: a client silent for 1.5 times the Server Keep Alive is disconnected."""
    if request.node.callspec.params["start_target"] == "mosquitto":
        pytest.skip("mosquitto's smallest max_keepalive is 10 s: too slow for this set")
    async with start_target(max_keepalive=1) as target, V5Client.open(target.address) as client:
        assert (await client.connect("silent", keep_alive=60)).properties.get("server_keep_alive") == 1
        assert await client.closed_by_peer(timeout=WAIT)  # a DISCONNECT 0x8D may come first
