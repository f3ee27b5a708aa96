"""Bridge settings: NanoMQ's bridges.mqtt sections load, are checked, masked and need a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config.changes import plan_change, plan_live_change
from broker.config.settings import BrokerSettings
from broker.config.source import MASK, ConfigError, ConfigSource, masked
from tests.unit.config_files import CONFIG_DIR, problems, write

NANOMQ_BRIDGE = """bridges.mqtt.emqx1 = {
  server = "tls+mqtt-tcp://127.0.0.1:8883"
  proto_ver = 4
  clientid = "bridge_client"
  keepalive = "60s"
  clean_start = false
  username = "username"
  password = "passwd"
  ssl = {
    key_password = "yourpass"
    keyfile = "/etc/certs/key.pem"
    certfile = "/etc/certs/cert.pem"
    cacertfile = "/etc/certs/cacert.pem"
  }
  forwards = [
    { remote_topic = "fwd/topic1", local_topic = "topic1", suffix = "/emqx" },
    { remote_topic = "fwd/topic2", local_topic = "topic2", prefix = "emqx/", qos = 1, retain = 2 }
  ]
  subscription = [
    { remote_topic = "cmd/topic1", local_topic = "topic3", qos = 1 },
    { remote_topic = "cmd/topic2", local_topic = "topic4", qos = 2, retain = 0 }
  ]
  max_parallel_processes = 2
  max_send_queue_len = 32
  max_recv_queue_len = 128
  resend_interval = 5000
  resend_wait = 3000
  cancel_timeout = 10000
}
bridges.mqtt.cache {
  disk_cache_size = 102400
  mounted_file_path = "/tmp/"
  flush_mem_threshold = 100
  resend_interval = 5000
}
"""


def load(tmp_path: Path, text: str) -> BrokerSettings:
    """The settings of a file holding ``text``."""
    return ConfigSource(write(tmp_path, text)).load()


def bridge_problem(tmp_path: Path, body: str) -> str:
    """The one problem of a file with one bridge ``b`` whose section holds ``body``."""
    path = write(tmp_path, f'bridges.mqtt.b {{\n  server = "mqtt-tcp://up:1883"\n  {body}\n}}\n')
    [problem] = problems(ConfigSource(path))
    return problem


def test_nanomq_bridge_section_loads_unchanged(tmp_path: Path) -> None:
    """NanoMQ's documented TCP bridge section and cache block load as NanoMQ writes them."""
    settings = load(tmp_path, NANOMQ_BRIDGE)
    bridge = settings.bridges.mqtt["emqx1"]
    assert (bridge.clientid, bridge.keepalive, bridge.max_send_queue_len) == ("bridge_client", 60.0, 32)
    assert [f.remote_topic for f in bridge.forwards] == ["fwd/topic1", "fwd/topic2"]
    assert (bridge.forwards[0].suffix, bridge.forwards[1].prefix) == ("/emqx", "emqx/")
    assert bridge.ssl is not None
    assert bridge.ssl.keypass == "yourpass"
    assert settings.bridges.cache.disk_cache_size == 102400


def test_cache_block_is_not_a_bridge(tmp_path: Path) -> None:
    """bridges.mqtt.cache fills settings.bridges.cache and is not among the named bridges."""
    settings = load(tmp_path, NANOMQ_BRIDGE)
    assert list(settings.bridges.mqtt) == ["emqx1"]


def test_bridge_cannot_be_named_cache(tmp_path: Path) -> None:
    """A bridge section named cache is refused with a message saying why."""
    path = write(tmp_path, 'bridges.mqtt.cache { server = "mqtt-tcp://up:1883" }\n')
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:1: bridges.mqtt.cache: "), problem
    assert "cache block, not a bridge" in problem


def test_defaults(tmp_path: Path) -> None:
    """A bridge with a server only gets the documented defaults, client id from its name."""
    bridge = load(tmp_path, 'bridges.mqtt.up { server = "mqtt-tcp://up.example:1883" }\n').bridges.mqtt["up"]
    assert (bridge.enable, bridge.proto_ver, bridge.clientid) == (True, 4, "edgemq-bridge-up")
    assert (bridge.keepalive, bridge.clean_start, bridge.forwards, bridge.subscription) == (60.0, False, [], [])
    assert (bridge.max_send_queue_len, bridge.max_inflight, bridge.ssl) == (32768, 256, None)


def test_server_address_and_default_ports(tmp_path: Path) -> None:
    """The server's host and port are read, IPv6 unbracketed, 1883 or 8883 when no port is given."""
    text = (
        'bridges.mqtt.a { server = "mqtt-tcp://[::1]:2883" }\n'
        'bridges.mqtt.b { server = "mqtt-tcp://up.example" }\n'
        'bridges.mqtt.c { server = "tls+mqtt-tcp://up.example" }\n'
    )
    bridges = load(tmp_path, text).bridges.mqtt
    assert [b.address for b in bridges.values()] == [("::1", 2883), ("up.example", 1883), ("up.example", 8883)]
    assert [b.tls for b in bridges.values()] == [False, False, True]


def test_ssl_verifies_the_server_by_default(tmp_path: Path) -> None:
    """A bridge's TLS checks the server's certificate unless verify_peer is turned off."""
    text = 'bridges.mqtt.a { server = "tls+mqtt-tcp://up:8883", ssl { cacertfile = "ca.pem" } }\n'
    ssl = load(tmp_path, text).bridges.mqtt["a"].ssl
    assert ssl is not None
    assert ssl.verify_peer


def test_quic_is_refused(tmp_path: Path) -> None:
    """An mqtt-quic:// server is refused saying QUIC is not supported."""
    path = write(tmp_path, 'bridges.mqtt.b { server = "mqtt-quic://up:14567" }\n')
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:1: bridges.mqtt.b.server: "), problem
    assert "QUIC is not supported" in problem


def test_mqtt5_is_accepted(tmp_path: Path) -> None:
    """proto_ver = 5 passes the configuration check (check-config) and loads as an MQTT 5 bridge."""
    path = write(tmp_path, 'bridges.mqtt.b {\n  server = "mqtt-tcp://up:1883"\n  proto_ver = 5\n}\n')
    assert ConfigSource(path).load().bridges.mqtt["b"].proto_ver == 5  # a problem would raise ConfigError


def test_mqtt31_is_refused(tmp_path: Path) -> None:
    """proto_ver = 3 is refused naming the versions that work."""
    problem = bridge_problem(tmp_path, "proto_ver = 3")
    assert "use proto_ver = 4 (MQTT 3.1.1) or 5 (MQTT 5)" in problem


def test_ssl_without_tls_scheme_is_refused(tmp_path: Path) -> None:
    """An ssl block on an mqtt-tcp:// server is refused rather than connecting in plain text."""
    assert "write tls+mqtt-tcp://" in bridge_problem(tmp_path, 'ssl { cacertfile = "ca.pem" }')


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('forwards = [ { local_topic = "a/#/b" } ]', "forwards.0.local_topic"),
        ('forwards = [ { local_topic = "a", remote_topic = "x/y#" } ]', "forwards.0.remote_topic"),
        ('forwards = [ { local_topic = "a/+", remote_topic = "x/+/+" } ]', "forwards.0"),
        ('forwards = [ { local_topic = "a", prefix = "p/+/" } ]', "forwards.0.prefix"),
        ('forwards = [ { local_topic = "a", qos = 3 } ]', "forwards.0.qos"),
        ('subscription = [ { remote_topic = "" } ]', "subscription.0.remote_topic"),
        ('subscription = [ { remote_topic = "c/+x" } ]', "subscription.0.remote_topic"),
        ('subscription = [ { remote_topic = "c", qos = -1 } ]', "subscription.0.qos"),
        ("max_inflight = 0", "max_inflight"),
        ("max_inflight = 65536", "max_inflight"),
        ("keepalive = 65536", "keepalive"),
        ('ssl { keyfile = "k.pem" }', "ssl"),
        ("colour = blue", "colour"),
    ],
)
def test_invalid_bridge_values_name_their_key(tmp_path: Path, body: str, key: str) -> None:
    """Invalid filters, targets, QoS, limits and unknown keys are errors naming the key and its line."""
    problem = bridge_problem(tmp_path, body)
    assert problem.startswith(f"{tmp_path / 'edgemq.conf'}:3: bridges.mqtt.b.{key}"), problem


def test_unknown_cache_key_names_file_and_line(tmp_path: Path) -> None:
    """An unknown key in the cache block names its file, line and full key."""
    path = write(tmp_path, "bridges.mqtt.cache {\n  disk_cache_size = 10\n  colour = blue\n}\n")
    assert problems(ConfigSource(path)) == [f"{path}:3: bridges.mqtt.cache.colour: unknown key"]


def test_bridge_name_with_slash_is_refused(tmp_path: Path) -> None:
    """A bridge name holding '/' (it names the bridge in admin API paths) is refused."""
    path = write(tmp_path, 'bridges.mqtt { "a/b" = { server = "mqtt-tcp://up:1883" } }\n')
    [problem] = problems(ConfigSource(path))
    assert "bridge name 'a/b'" in problem


def test_nanomq_retain_values(tmp_path: Path) -> None:
    """retain 0 clears, 1 sets and 2 (or no retain) keeps the message's flag."""
    rules = '{ local_topic = "a", retain = 0 }, { local_topic = "b", retain = 1 }, { local_topic = "c", retain = 2 }'
    body = f'forwards = [ {rules}, {{ local_topic = "d" }} ]'
    path = write(tmp_path, f'bridges.mqtt.b {{ server = "mqtt-tcp://up:1883", {body} }}\n')
    forwards = ConfigSource(path).load().bridges.mqtt["b"].forwards
    assert [f.retain for f in forwards] == [False, True, None, None]


def test_forward_qos_defaults_to_the_messages_own(tmp_path: Path) -> None:
    """A forward without qos has qos 2: min(2, message QoS) keeps the message's QoS."""
    path = write(tmp_path, 'bridges.mqtt.b { server = "mqtt-tcp://up:1883", forwards = [ { local_topic = "a" } ] }\n')
    assert ConfigSource(path).load().bridges.mqtt["b"].forwards[0].qos == 2


def test_bridge_secrets_are_masked(tmp_path: Path) -> None:
    """A configuration read masks the bridge password and its TLS key password, like the admin password."""
    shown = masked(load(tmp_path, NANOMQ_BRIDGE).model_dump(mode="json"))
    bridge = shown["bridges"]["mqtt"]["emqx1"]
    assert (bridge["password"], bridge["ssl"]["keypass"]) == (MASK, MASK)
    assert "passwd" not in repr(shown)
    assert "yourpass" not in repr(shown)


def test_settings_dump_reads_back(tmp_path: Path) -> None:
    """A dump of the settings (cache block beside the bridges) validates back to the same settings."""
    settings = load(tmp_path, NANOMQ_BRIDGE)
    dumped = settings.model_dump()
    assert "cache" in dumped["bridges"]["mqtt"]
    assert BrokerSettings.model_validate(dumped) == settings


def test_bridge_change_needs_restart(tmp_path: Path) -> None:
    """A change to a bridge is written for the next start, not applied live."""
    source = ConfigSource(write(tmp_path, NANOMQ_BRIDGE))
    planned = plan_change(source, source.load(), {"bridges": {"mqtt": {"emqx1": {"max_inflight": 10}}}})
    assert planned.restart_required == ["bridges.mqtt.emqx1.max_inflight"]


def test_bridge_change_is_not_live(tmp_path: Path) -> None:
    """A live change to a bridge is refused as needing a restart."""
    running = load(tmp_path, NANOMQ_BRIDGE)
    with pytest.raises(ConfigError, match=r"bridges\.mqtt\.emqx1\.enable: cannot change without a restart"):
        plan_live_change(running, {"bridges": {"mqtt": {"emqx1": {"enable": False}}}})


def test_gateway_example_runs_a_bridge() -> None:
    """The gateway example configures an enabled bridge with TLS, forwards and subscriptions."""
    settings = ConfigSource(CONFIG_DIR / "gateway" / "edgemq.conf").load()
    bridge = settings.bridges.mqtt["cloud"]
    assert bridge.enable
    assert bridge.tls
    assert bridge.forwards
    assert bridge.subscription


def test_default_file_bridge_example_loads(tmp_path: Path) -> None:
    """The commented bridge example of config/edgemq.conf, uncommented, is valid."""
    text = (CONFIG_DIR / "edgemq.conf").read_text()
    example = text[text.index("# bridges.mqtt.cloud {") : text.index("\npersistence {")]
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines())
    settings = load(tmp_path, uncommented)
    assert settings.bridges.mqtt["cloud"].ssl is not None
    assert "cache" in settings.bridges.model_dump()["mqtt"]
