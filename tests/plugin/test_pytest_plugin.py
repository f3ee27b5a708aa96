"""The pytest plugin as a user meets it: small test files run by pytester."""

from __future__ import annotations

import socket
import threading

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def inner_ini(pytester: pytest.Pytester) -> None:
    """The inner runs' configuration: pytest-asyncio's loop scope set, as a user project would."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


SYNC_PAHO_TEST = """
import paho.mqtt.client as mqtt

def test_device_publishes(mqtt_broker):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev1")
    client.connect(mqtt_broker.mqtt_host, mqtt_broker.mqtt_port)
    client.loop_start()
    try:
        mqtt_broker.wait_for_client("dev1")
        client.publish("sensors/t", b"21.5", qos=1).wait_for_publish(5)
        message = mqtt_broker.wait_for_message("sensors/#")
        assert (message.topic, message.payload, message.sender) == ("sensors/t", b"21.5", "dev1")
        assert mqtt_broker.stats().message_in == 1
    finally:
        client.disconnect()
        client.loop_stop()
"""


def test_sync_paho_test(pytester: pytest.Pytester) -> None:
    """A plain sync test with paho-mqtt uses mqtt_broker's address and waits."""
    pytester.makepyfile(SYNC_PAHO_TEST)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


ASYNC_TESTS = """
import aiomqtt
import pytest

async def roundtrip(mqtt_broker, client_id):
    async with aiomqtt.Client(mqtt_broker.mqtt_host, mqtt_broker.mqtt_port, identifier=client_id) as client:
        await client.subscribe("x/#")
        assert await mqtt_broker.aio.wait_for_subscription("x/#", client_id) == client_id
        await client.publish("x/1", b"hi")
        assert (await mqtt_broker.aio.wait_for_message("x/#")).payload == b"hi"
        async for message in client.messages:
            assert message.payload == b"hi"
            break

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_with_anyio(mqtt_broker):
    await roundtrip(mqtt_broker, "anyio-client")

@pytest.mark.asyncio
async def test_with_pytest_asyncio(mqtt_broker):
    await roundtrip(mqtt_broker, "asyncio-client")

@pytest.mark.asyncio(loop_scope="module")
async def test_with_module_scoped_loop(mqtt_broker_reset):
    await roundtrip(mqtt_broker_reset, "module-loop-client")
"""


def test_async_tests(pytester: pytest.Pytester) -> None:
    """aiomqtt tests under anyio and pytest-asyncio (any loop scope) use the fixtures without loop errors."""
    pytester.makepyfile(ASYNC_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::DeprecationWarning")
    result.assert_outcomes(passed=3)


PARALLEL_TEST = """
import pytest
import paho.mqtt.client as mqtt

@pytest.mark.parametrize("n", range(4))
def test_parallel(mqtt_broker, mqtt_broker_reset, n):
    for broker in (mqtt_broker, mqtt_broker_reset):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"c{n}")
        client.connect(broker.mqtt_host, broker.mqtt_port)
        client.loop_start()
        broker.wait_for_client(f"c{n}")
        client.disconnect()
        client.loop_stop()
"""


def test_parallel_processes_do_not_clash(pytester: pytest.Pytester) -> None:
    """Tests in two xdist worker processes each get their own ports."""
    pytester.makepyfile(PARALLEL_TEST)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2").assert_outcomes(passed=4)


FAILING_TEST = """
def test_fails(mqtt_broker):
    import pathlib
    pathlib.Path({port_file!r}).write_text(str(mqtt_broker.mqtt_port))
    assert False, "the test fails after the broker started"
"""


def test_failing_test_leaves_nothing_running(pytester: pytest.Pytester) -> None:
    """After a failing test the broker's thread is gone and its port is closed."""
    port_file = pytester.path / "port.txt"
    pytester.makepyfile(FAILING_TEST.format(port_file=str(port_file)))
    before = set(threading.enumerate())
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(failed=1)
    assert [t.name for t in set(threading.enumerate()) - before] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=5).close()


RESET_TESTS = """
import paho.mqtt.client as mqtt

def connect(broker, client_id, **kwargs):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
    client.connect(broker.mqtt_host, broker.mqtt_port)
    client.loop_start()
    broker.wait_for_client(client_id)
    return client

def test_1_leaves_state_behind(mqtt_broker_reset):
    client = connect(mqtt_broker_reset, "sticky", clean_session=False)
    client.subscribe("left/over", qos=1)
    mqtt_broker_reset.wait_for_subscription("left/over", "sticky")
    client.publish("retained/t", b"old", retain=True, qos=1).wait_for_publish(5)
    mqtt_broker_reset.wait_for_message("retained/t")
    client.loop_stop()  # no DISCONNECT: the connection stays open

def test_2_starts_clean(mqtt_broker_reset):
    assert mqtt_broker_reset.stats().message_in == 0
    assert mqtt_broker_reset.stats().client_size == 0
    received = []
    client = connect(mqtt_broker_reset, "fresh")
    client.on_message = lambda c, u, m: received.append(m.payload)
    client.subscribe("retained/#", qos=1)
    mqtt_broker_reset.wait_for_subscription("retained/#", "fresh")
    client.publish("retained/marker", b"new", qos=1).wait_for_publish(5)
    mqtt_broker_reset.wait_for_message("retained/marker")
    client.disconnect()
    client.loop_stop()
    assert b"old" not in received
"""


def test_reset_isolates_tests(pytester: pytest.Pytester) -> None:
    """mqtt_broker_reset hands each test a broker without clients, sessions, retained messages or counts."""
    pytester.makepyfile(RESET_TESTS)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


MARKER_TEST = """
import httpx
import paho.mqtt.client as mqtt
import pytest

@pytest.mark.edgemq(allow_anonymous=False, admin_username="ops", admin_password="s3cret")
def test_options(mqtt_broker):
    codes = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon")
    client.on_connect = lambda client, userdata, flags, code, properties: codes.append(code)
    client.connect(mqtt_broker.mqtt_host, mqtt_broker.mqtt_port)
    for _ in range(50):
        if codes:
            break
        client.loop(timeout=0.1)
    assert codes and codes[0].is_failure, codes
    assert mqtt_broker.admin_auth == ("ops", "s3cret")
    answer = httpx.post(mqtt_broker.api_url + "/v1", json={"req": 2, "seq": 1}, auth=mqtt_broker.admin_auth)
    assert answer.status_code == 200

@pytest.mark.edgemq(conf="edgemq.conf")
def test_config_file(mqtt_broker):
    assert mqtt_broker.settings.mqtt.max_mqueue_len == 77
    assert mqtt_broker.mqtt_port != 1883

@pytest.mark.edgemq(colour="blue")
def test_unknown_option(mqtt_broker):
    pass
"""


def test_marker_sets_broker_options(pytester: pytest.Pytester) -> None:
    """@pytest.mark.edgemq passes options (or a config file) to the broker; an unknown option is a clear error."""
    pytester.makepyfile(MARKER_TEST)
    (pytester.path / "edgemq.conf").write_text('listeners.tcp.bind = "0.0.0.0:1883"\nmqtt.max_mqueue_len = 77\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*unknown @pytest.mark.edgemq options:*colour*"])


PLUGIN_MODULE = """
from amqtt.plugins.base import BaseAuthPlugin

class NoMallory(BaseAuthPlugin):
    async def authenticate(self, *, session):
        return session.username != "mallory"
"""

PLUGIN_MARKER_TEST = """
import paho.mqtt.client as mqtt
import pytest

def connack(broker, username):
    codes = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=username)
    client.username_pw_set(username, "pw")
    client.on_connect = lambda client, userdata, flags, code, properties: codes.append(code)
    client.connect(broker.mqtt_host, broker.mqtt_port)
    for _ in range(50):
        if codes:
            break
        client.loop(timeout=0.1)
    client.disconnect()
    return codes[0]

@pytest.mark.edgemq(plugins={"myplugins.NoMallory": {}})
def test_plugin_refuses(mqtt_broker):
    assert connack(mqtt_broker, "mallory").is_failure
    assert not connack(mqtt_broker, "alice").is_failure
"""


def test_marker_loads_plugins(pytester: pytest.Pytester) -> None:
    """@pytest.mark.edgemq(plugins=...) loads amqtt plugins from the user's own modules."""
    pytester.makepyfile(myplugins=PLUGIN_MODULE, test_plugin_marker=PLUGIN_MARKER_TEST)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
