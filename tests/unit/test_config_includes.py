"""Included configuration files: errors name the included file; an include that cannot be read fails closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli import main
from broker.config.locations import Located
from broker.config.source import ConfigSource
from tests.unit.config_files import problems, write


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


@pytest.mark.usefixtures("quiet_logging")
def test_include_in_an_environment_value_must_be_there() -> None:
    """An include inside an EDGEMQ_* value that cannot be read is an error naming the variable, whatever the logging."""
    [problem] = problems(ConfigSource(env={"EDGEMQ_AUTH__PASSWORD": '{ include "paswd.conf" }'}))
    assert (
        problem
        == "environment EDGEMQ_AUTH__PASSWORD: an included file cannot be read (paswd.conf: No such file or directory)"
    )
