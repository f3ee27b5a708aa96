"""Configuration errors: every problem named by file, line and key, in line order."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config.source import ConfigSource
from tests.unit.config_files import problems, write


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


def test_environment_errors_name_the_environment() -> None:
    """A bad environment override is reported as coming from the environment."""
    [problem] = problems(ConfigSource(env={"EDGEMQ_HTTP_SERVER__COLOUR": "red", "EDGEMQ_EXTRA": "ignored"}))
    assert problem == "environment: http_server.colour: unknown key"


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
