"""Configuration files: NanoMQ's layout, every error named, precedence, masking, safe writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main
from broker.config_file import MASK, ConfigError, ConfigSource, masked, override_path
from broker.settings import BrokerSettings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

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


def write(tmp_path: Path, text: str, name: str = "edgemq.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(source: ConfigSource) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        source.load()
    return caught.value.problems


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
    """config/edgemq.conf holds exactly the built-in defaults."""
    assert ConfigSource(CONFIG_DIR / "edgemq.conf").load() == BrokerSettings()


def test_gateway_example_loads() -> None:
    """The IoT gateway example is valid and is not loopback-only."""
    settings = ConfigSource(CONFIG_DIR / "gateway" / "edgemq.conf").load()
    assert not settings.auth.allow_anonymous
    assert "sensor-01" in settings.auth.password
    assert settings.http_server.ip_addr == "0.0.0.0"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A HOCON syntax error names the file and the line."""
    path = write(tmp_path, "mqtt {\n  max_mqueue_len = 10\n  retry_interval = [\n")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:4: syntax error")


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    """An unknown key is an error naming the file, its line and the key."""
    path = write(tmp_path, "mqtt {\n  max_mqueue_len = 10\n  colour = blue\n}\n")
    assert problems(ConfigSource(path)) == [f"{path}:3: mqtt.colour: unknown key"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("http_server.port = 70000", "http_server.port"),
        ('http_server.port = "8081"', "http_server.port"),
        ("auth.allow_anonymous = yes-please", "auth.allow_anonymous"),
        ("mqtt.max_packet_size = 1XB", "mqtt.max_packet_size"),
        ("mqtt.retry_interval = soon", "mqtt.retry_interval"),
        ("mqtt.keepalive_multiplier = 0.5", "mqtt.keepalive_multiplier"),
        ('listeners.tcp.bind = "no-port"', "listeners.tcp.bind"),
        ("log.level = loud", "log.level"),
        ('bridges.mqtt.b { server = "http://x" }', "bridges.mqtt.b.server"),
    ],
)
def test_wrong_type_or_range_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Wrong types and out-of-range values are errors naming the file, line and key."""
    path = write(tmp_path, text + "\n")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:1: {key}:"), problem


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """All problems of a file are listed, not only the first."""
    path = write(tmp_path, "mqtt.colour = 1\nhttp_server.port = -1\n")
    assert len(problems(ConfigSource(path))) == 2


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path: Path) -> None:
    """File < EDGEMQ_<SECTION>__<KEY> < command-line flags."""
    path = write(tmp_path, "http_server.port = 9000\nmqtt.max_mqueue_len = 5\nlog.level = error\n")
    env = {"EDGEMQ_HTTP_SERVER__PORT": "9001", "EDGEMQ_MQTT__MAX_PACKET_SIZE": "2MB", "EDGEMQ_LOG__LEVEL": "warn"}
    settings = ConfigSource(path, env=env, cli={"http_server": {"port": 9002}}).load()
    assert settings.http_server.port == 9002
    assert settings.mqtt.max_packet_size == 2 * 1024 * 1024
    assert settings.mqtt.max_mqueue_len == 5
    assert settings.log.level == "warn"


def test_environment_errors_name_the_environment() -> None:
    """A bad environment override is reported as coming from the environment."""
    [problem] = problems(ConfigSource(env={"EDGEMQ_HTTP_SERVER__COLOUR": "red", "EDGEMQ_EXTRA": "ignored"}))
    assert problem == "environment: http_server.colour: unknown key"


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
