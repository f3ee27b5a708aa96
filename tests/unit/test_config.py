"""Configuration files: NanoMQ's layout, every error named, precedence, masking, safe writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli import main
from broker.config.locations import Located
from broker.config.settings import BrokerSettings
from broker.config.source import MASK, ConfigError, ConfigSource, masked, override_path

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


@pytest.fixture(params=["root logger at ERROR", "logging.disable(WARNING)"])
def quiet_logging(request: pytest.FixtureRequest) -> Iterator[None]:
    """Logging that drops pyhocon's warnings (as ``log.level = error`` or a host application does)."""
    root = logging.getLogger()
    level = root.level
    if request.param == "root logger at ERROR":
        root.setLevel(logging.ERROR)
    else:
        logging.disable(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)
        logging.disable(logging.NOTSET)


ALLMAN_AUTH = 'auth\n{\n  allow_anonymous = false\n  password = { include "passwd.conf" }\n}\n'


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


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('http_server.username = ""', "http_server.username", "must not be empty"),
        ('http_server.username = "ad:min"', "http_server.username", "must not contain ':'"),
        ('http_server.password = ""', "http_server.password", "must not be empty"),
        ("http_server.max_body = 1023", "http_server.max_body", "greater than or equal to 1024"),
        ("mqtt.max_packet_size = 0", "mqtt.max_packet_size", "greater than or equal to 1024"),
        ("mqtt.max_packet_size = 268435456", "mqtt.max_packet_size", "less than or equal to 268435455"),
        ("mqtt.retry_interval = 1e300", "mqtt.retry_interval", "less than or equal to 86400"),
        ("shutdown_timeout = 2d", "shutdown_timeout", "less than or equal to 86400"),
        ("mqtt.connect_timeout = 0", "mqtt.connect_timeout", "greater than 0"),
        ("mqtt.keepalive_multiplier = 1e300", "mqtt.keepalive_multiplier", "less than or equal to 10"),
        ('http_server.ip_addr = "localhost"', "http_server.ip_addr", "not an IP address"),
        ("listeners.tcp = null", "listeners", "no MQTT listener is on"),
    ],
)
def test_out_of_range_values_are_refused(tmp_path: Path, text: str, key: str, reason: str) -> None:
    """Values that would lock the admin out, drop every client or overflow a timer are errors naming the key and why."""
    path = write(tmp_path, text + "\n")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:1: {key}: "), problem
    assert reason in problem


def test_top_level_key_line_is_exact(tmp_path: Path) -> None:
    """An error in a top-level key names that key's own line, not the one before."""
    path = write(tmp_path, "# comment\nmqtt.max_mqueue_len = 5\nshutdown_timeout = -1\n")
    assert problems(ConfigSource(path)) == [f"{path}:3: shutdown_timeout: Input should be greater than or equal to 0"]


def test_errors_inside_lists_name_the_element_that_holds_them(tmp_path: Path) -> None:
    """An error inside a list names the line of the occurrence that holds the bad value."""
    path = write(
        tmp_path,
        "bridges.mqtt.cloud {\n"
        '  server = "mqtt-tcp://x:1883"\n'
        "  forwards = [\n"
        '    { remote_topic = "a", local_topic = "b", qos = 1 }\n'
        '    { remote_topic = "a", local_topic = "b", qos = 7 }\n'
        "  ]\n"
        "}\n",
    )
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:5: bridges.mqtt.cloud.forwards.1.qos: "), problem


def test_errors_are_listed_in_line_order(tmp_path: Path) -> None:
    """Several errors are listed in the order of their lines, whatever the order of the settings."""
    path = write(tmp_path, "shutdown_timeout = -1\nlog.level = loud\nhttp_server.port = -1\nlisteners.tcp.bind = x\n")
    lines = [int(problem.split(":")[1]) for problem in problems(ConfigSource(path))]
    assert lines == [1, 2, 3, 4]


def test_missing_field_names_the_object_that_lacks_it(tmp_path: Path) -> None:
    """A required key missing from a list element names the line of that element."""
    path = write(tmp_path, "auth.acl.rules = [\n  { permit = allow }\n  { topics = [a] }\n]\n")
    [problem] = problems(ConfigSource(path))
    assert problem == f"{path}:3: auth.acl.rules.1.permit: Field required"


def test_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    """A bad value that comes from an included file names that file and its line."""
    acl = write(tmp_path, 'rules = [\n  {"permit": "allow"}\n  {"permit": "maybe"}\n]\n', "acl.conf")
    path = write(tmp_path, 'auth {\n  acl = { include "acl.conf" }\n}\n')
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{acl}:3: auth.acl.rules.1.permit: "), problem


@pytest.mark.parametrize(
    ("include", "reason"),
    [
        ('password = { include "paswd.conf" }', "no such file"),
        ('password = { include "a-directory" }', "cannot be read"),
        ('password = { include "nothing-*.conf" }', "no file matches"),
        ('password = { include url("http://example.com/p.conf") }', "only files can be included"),
        ('password = { include "edgemq.conf" }', "includes itself"),
    ],
)
def test_include_that_cannot_be_read_fails_closed(tmp_path: Path, include: str, reason: str) -> None:
    """A missing, unreadable, unmatched, remote or circular include is an error naming the file and line."""
    (tmp_path / "a-directory").mkdir()
    path = write(tmp_path, f"auth {{\n  allow_anonymous = false\n  {include}\n}}\n")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:3: include "), problem
    assert reason in problem


def test_include_after_a_brace_on_the_next_line_is_checked(tmp_path: Path) -> None:
    """A missing include inside ``key`` + newline + ``{`` (which pyhocon accepts) is found and named."""
    path = write(tmp_path, ALLMAN_AUTH)
    [problem] = problems(ConfigSource(path))
    assert problem == f'{path}:4: include "passwd.conf": no such file ({tmp_path / "passwd.conf"})'


def test_include_after_text_the_scan_cannot_follow_is_an_error(tmp_path: Path) -> None:
    """An include after text the include scan cannot follow (a line continuation) is an error naming both lines."""
    write(tmp_path, 'alice = "pw"\n', "passwd.conf")
    path = write(tmp_path, f"log.level = \\\n  warn\n{ALLMAN_AUTH}")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:2: "), problem
    assert "include on line 6 cannot be checked" in problem


@pytest.mark.usefixtures("quiet_logging")
def test_include_pyhocon_skips_is_an_error_whatever_the_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An include the scan did not see is still an error when pyhocon's warnings are not logged."""
    monkeypatch.setattr("broker.config.source.scan", lambda path, text: Located())
    path = write(tmp_path, 'auth.password = { include "paswd.conf" }\n')
    [problem] = problems(ConfigSource(path))
    assert problem == f"{path}: an included file cannot be read ({tmp_path / 'paswd.conf'}: No such file or directory)"


@pytest.mark.usefixtures("quiet_logging")
def test_check_config_refuses_a_missing_include_whatever_the_logging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config exits 2 on a missing include in the ``key`` + newline + ``{`` layout, however logging is set."""
    conf = write(tmp_path, ALLMAN_AUTH)
    assert main(["check-config", str(conf)]) == 2
    assert f'{conf}:4: include "passwd.conf": no such file' in capsys.readouterr().err


def test_check_config_refuses_a_missing_include(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config exits 2 naming a missing include (pyhocon alone warns and reads on)."""
    conf = write(tmp_path, 'auth {\n  allow_anonymous = false\n  password = { include "paswd.conf" }\n}\n')
    assert main(["check-config", str(conf)]) == 2
    output = capsys.readouterr()
    assert f'{conf}:3: include "paswd.conf": no such file' in output.err
    assert "ok" not in output.out


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


def test_top_level_acl_section_gets_a_migration_error(tmp_path: Path) -> None:
    """The top-level acl section of earlier versions is an error saying where the ACL went."""
    path = write(tmp_path, "mqtt.max_mqueue_len = 5\nacl {\n  no_match = deny\n}\n")
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:2: acl: the ACL moved into auth"), problem


def test_acl_rule_address_must_be_an_address(tmp_path: Path) -> None:
    """An ACL rule's ipaddr must be an address or a network."""
    path = write(tmp_path, 'auth.acl.rules = [ { permit = allow, ipaddr = "10.0.0.300" } ]\n')
    [problem] = problems(ConfigSource(path))
    assert problem.startswith(f"{path}:1: auth.acl.rules.0.ipaddr: not an IP address or network"), problem


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


@pytest.mark.usefixtures("quiet_logging")
def test_include_in_an_environment_value_must_be_there() -> None:
    """An include inside an EDGEMQ_* value that cannot be read is an error naming the variable, whatever the logging."""
    [problem] = problems(ConfigSource(env={"EDGEMQ_AUTH__PASSWORD": '{ include "paswd.conf" }'}))
    assert (
        problem
        == "environment EDGEMQ_AUTH__PASSWORD: an included file cannot be read (paswd.conf: No such file or directory)"
    )
