"""Configuration files: NanoMQ's layout, the shipped files, precedence, masking, safe writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main
from broker.config.settings import BrokerSettings, Persistence
from broker.config.source import MASK, ConfigError, ConfigSource, masked, override_path
from tests.unit.config_files import CONFIG_DIR, write

NANOMQ_STYLE = """
# a NanoMQ user's file, trimmed to the keys edgemq supports
listeners.tcp { bind = "0.0.0.0:1884" }
listeners.ws  { bind = "0.0.0.0:8084/mqtt" }
listeners.ssl {
    bind = "0.0.0.0:8884"
    keyfile = "/etc/certs/key.pem"
    certfile = "/etc/certs/cert.pem"
    cacertfile = "/etc/certs/cacert.pem"
    keypass = "key-secret"
}
mqtt { max_packet_size = 2MB, max_mqueue_len = 512, retry_interval = 30s, keepalive_multiplier = 1.5 }
http_server {
    port = 9081
    ip_addr = "0.0.0.0"
    max_body = 512KB
    username = ops
    password = "api-secret"
    auth_type = basic
}
auth {
    allow_anonymous = false
    password = { include "passwd.conf" }
}
log { to = [console, file], level = warn }
bridges.mqtt.cloud {
    server = "mqtt-tcp://cloud.example.com:1883"
    clientid = edge1
    username = edge
    password = "bridge-secret"
    keepalive = 2m
    clean_start = true
    forwards = [ { remote_topic = "up/#", local_topic = "u/#", qos = 1 } ]
    subscription = [ { remote_topic = "down/#", local_topic = "d/#", qos = 2 } ]
}
"""


def test_nanomq_style_file(tmp_path: Path) -> None:
    """A NanoMQ-style file with every supported key loads, sizes and durations converted."""
    write(tmp_path, 'alice = "pw1"\nbob = "pw2"\n', "passwd.conf")
    settings = ConfigSource(write(tmp_path, NANOMQ_STYLE)).load()
    assert settings.listeners.tcp is not None
    assert settings.listeners.tcp.address == ("0.0.0.0", 1884)
    assert settings.listeners.ws is not None
    assert settings.listeners.ws.path == "/mqtt"
    assert settings.listeners.ssl is not None
    assert settings.listeners.ssl.keypass == "key-secret"
    assert (settings.mqtt.max_packet_size, settings.mqtt.retry_interval) == (2 * 1024 * 1024, 30.0)
    assert (settings.http_server.port, settings.http_server.max_body) == (9081, 512 * 1024)
    assert settings.auth.password == {"alice": "pw1", "bob": "pw2"}
    assert settings.log.to == ["console", "file"]
    bridge = settings.bridges.mqtt["cloud"]
    assert (bridge.keepalive, bridge.forwards[0].qos, bridge.subscription[0].local_topic) == (120.0, 1, "d/#")


def test_default_file_lists_every_default() -> None:
    """config/edgemq.conf holds the built-in defaults, persistence on (beside the file) apart."""
    settings = ConfigSource(CONFIG_DIR / "edgemq.conf").load()
    on_disk = Persistence(enable=True, path=str(CONFIG_DIR / "data" / "edgemq.db"), sync="always")
    assert settings.model_copy(update={"persistence": Persistence()}) == BrokerSettings()
    assert settings.persistence == on_disk


def test_gateway_example_loads() -> None:
    """The IoT gateway example is valid and is not loopback-only."""
    settings = ConfigSource(CONFIG_DIR / "gateway" / "edgemq.conf").load()
    assert not settings.auth.allow_anonymous
    assert "sensor-01" in settings.auth.password
    assert settings.http_server.ip_addr == "0.0.0.0"


NANOMQ_ACL = """rules = [
  ## Allow MQTT client using username "dashboard"  to subscribe to "$SYS/#" topics
  {"permit": "allow", "username": "dashboard", "action": "subscribe", "topics": ["$SYS/#"]}

  ## Deny "All Users" subscribe to "$SYS/#" "#" Topics
  {"permit": "deny", "username": "#", "action": "subscribe", "topics": ["$SYS/#", "#"]}

  {"permit": "allow", "ipaddr": "127.0.0.1", "action": "pubsub", "topics": ["$SYS/#", "#"]}
  {"permit": "allow", "and": [{"username": "admin"}, {"clientid": "admin"}], "action": "subscribe", "topics": ["a"]}
  {"permit": "deny", "or": [{"username": "emqx"}, {"clientid": "emqx"}], "topics": ["t/${clientid}"]}

  ## Allow any other publish/subscribe operation
  {"permit": "allow"}
]
"""


NANOMQ_AUTH = """auth {
    allow_anonymous = true
    no_match = deny
    deny_action = disconnect
    cache = {
        max_size = 32
        ttl = 1m
    }
    password = {include "nanomq_pwd.conf"}
    acl = {include "nanomq_acl.conf"}
}
"""


def test_nanomq_auth_layout_loads_unchanged(tmp_path: Path) -> None:
    """NanoMQ's auth section with its password and ACL files loads as NanoMQ writes them."""
    write(tmp_path, '"admin": "public"\n"client": "public"\n', "nanomq_pwd.conf")
    write(tmp_path, NANOMQ_ACL, "nanomq_acl.conf")
    auth = ConfigSource(write(tmp_path, NANOMQ_AUTH)).load().auth
    assert (auth.no_match, auth.deny_action, auth.cache.ttl) == ("deny", "disconnect", 60.0)
    assert auth.password == {"admin": "public", "client": "public"}
    rules = auth.acl.rules
    assert [rule.permit for rule in rules] == ["allow", "deny", "allow", "allow", "deny", "allow"]
    assert (rules[2].ipaddr, rules[3].all_of[1].clientid, rules[4].topics) == ("127.0.0.1", "admin", ["t/${clientid}"])
    assert (rules[5].action, rules[5].topics) == ("pubsub", None)


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path: Path) -> None:
    """File < EDGEMQ_<SECTION>__<KEY> < command-line flags."""
    path = write(tmp_path, "http_server.port = 9000\nmqtt.max_mqueue_len = 5\nlog.level = error\n")
    env = {"EDGEMQ_HTTP_SERVER__PORT": "9001", "EDGEMQ_MQTT__MAX_PACKET_SIZE": "2MB", "EDGEMQ_LOG__LEVEL": "warn"}
    settings = ConfigSource(path, env=env, cli={"http_server": {"port": 9002}}).load()
    assert settings.http_server.port == 9002
    assert settings.mqtt.max_packet_size == 2 * 1024 * 1024
    assert settings.mqtt.max_mqueue_len == 5
    assert settings.log.level == "warn"


def test_every_secret_is_masked(tmp_path: Path) -> None:
    """Masking replaces admin, client, bridge and key passwords, and nothing else."""
    write(tmp_path, 'alice = "pw1"\n', "passwd.conf")
    shown = masked(ConfigSource(write(tmp_path, NANOMQ_STYLE)).load().model_dump(mode="json"))
    assert shown["http_server"]["password"] == MASK
    assert shown["auth"]["password"] == {"alice": MASK}
    assert shown["bridges"]["mqtt"]["cloud"]["password"] == MASK
    assert shown["listeners"]["ssl"]["keypass"] == MASK
    assert shown["http_server"]["username"] == "ops"
    text = repr(shown)
    assert all(secret not in text for secret in ("pw1", "api-secret", "bridge-secret", "key-secret"))


def test_override_file_is_written_atomically_with_backup(tmp_path: Path) -> None:
    """Writing the override file replaces it whole and keeps the previous version as .bak."""
    source = ConfigSource(write(tmp_path, "mqtt.max_mqueue_len = 5\n"))
    source.write_override({"mqtt": {"max_mqueue_len": 6}})
    source.write_override({"mqtt": {"max_mqueue_len": 7}})
    target = override_path(source.path)  # type: ignore[arg-type]
    assert source.load().mqtt.max_mqueue_len == 7
    assert '"max_mqueue_len": 6' in target.with_name(target.name + ".bak").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "edgemq.conf",
        "edgemq.override.conf",
        "edgemq.override.conf.bak",
    ]


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints a one-line summary and exits 0, or prints the errors and exits 2."""
    assert main(["check-config", str(CONFIG_DIR / "edgemq.conf")]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    bad = write(tmp_path, "mqtt.colour = 1\n")
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:1: mqtt.colour: unknown key" in capsys.readouterr().err


def test_check_config_reports_a_broken_password_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A password file line without a colon fails check-config with its line number."""
    write(tmp_path, "alice:pw\nbroken line\n", "passwd")
    conf = write(tmp_path, f'auth.password_file = "{tmp_path / "passwd"}"\n')
    assert main(["check-config", str(conf)]) == 2
    assert f"{tmp_path / 'passwd'}:2: expected username:password" in capsys.readouterr().err


UNICODE_VALUES = {
    "latin": ("jürgen", "pässwörd", "température/#"),
    "cyrillic": ("пользователь", "пароль", "датчики/температура/#"),
    "cjk": ("用户", "密码", "温度/传感器/#"),
    "emoji": ("🙂user", "🔑🔒", "sensors/🌡️/#"),
}


@pytest.mark.parametrize("script", sorted(UNICODE_VALUES))
def test_non_ascii_values_round_trip_through_the_override_file(tmp_path: Path, script: str) -> None:
    """Passwords, user names and ACL topics in any script read back from the override file exactly."""
    user, password, topic = UNICODE_VALUES[script]
    source = ConfigSource(write(tmp_path, "mqtt.max_mqueue_len = 5\n"))
    rule = {"permit": "deny", "action": "publish", "topics": [topic]}
    source.write_override(
        {"http_server": {"password": password}, "auth": {"password": {user: password}, "acl": {"rules": [rule]}}}
    )
    settings = source.load()
    assert settings.http_server.password == password
    assert settings.auth.password == {user: password}
    assert settings.auth.acl.rules[0].topics == [topic]


def test_quoted_key_with_a_dot_reads_as_one_key(tmp_path: Path) -> None:
    """A quoted key holding a dot ("a.b" = ...) is that one key, without its quotes."""
    write(tmp_path, '"first.last" = "pw"\n', "passwd.conf")
    settings = ConfigSource(write(tmp_path, 'auth.password = { include "passwd.conf" }\n')).load()
    assert settings.auth.password == {"first.last": "pw"}


def test_value_that_cannot_be_stored_exactly_is_refused(tmp_path: Path) -> None:
    """A value pyhocon would read back differently (a control character) is refused, not written."""
    source = ConfigSource(write(tmp_path, "mqtt.max_mqueue_len = 5\n"))
    with pytest.raises(ConfigError) as caught:
        source.write_override({"http_server": {"password": "bell\x07"}})
    assert caught.value.problems == ["http_server.password: cannot be stored exactly in the override file"]
    assert not override_path(tmp_path / "edgemq.conf").exists()


def test_plugin_and_http_auth_secrets_are_masked() -> None:
    """A plugin's secret_key/token and an http_auth authorization header read back as ******."""
    data = {
        "plugins": {"amqtt.contrib.jwt.UserAuthJwtPlugin": {"secret_key": "k", "token": "t", "user_claim": "sub"}},
        "auth": {"http_auth": {"auth_req": {"headers": {"authorization": "Bearer t"}, "url": "http://h/a"}}},
    }
    shown = masked(data)
    assert shown["plugins"]["amqtt.contrib.jwt.UserAuthJwtPlugin"] == {
        "secret_key": MASK,
        "token": MASK,
        "user_claim": "sub",
    }
    assert shown["auth"]["http_auth"]["auth_req"] == {"headers": {"authorization": MASK}, "url": "http://h/a"}
