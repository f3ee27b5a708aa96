"""The store's settings: ``persistence``, NanoMQ's ``sqlite`` folded into it, paths, faults, live changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main
from broker.config.changes import plan_change, plan_live_change
from broker.config.settings import BrokerSettings, Persistence
from broker.config.source import ConfigError, ConfigSource
from broker.testing.pytest_plugin import settings_for_test
from tests.unit.config_files import CONFIG_DIR, problems, write


def conf_dir(tmp_path: Path) -> Path:
    """A directory for the configuration file, apart from the current directory."""
    directory = tmp_path / "etc"
    directory.mkdir()
    return directory


def test_embedding_defaults_keep_everything_in_memory() -> None:
    """BrokerSettings() and BrokerSettings.ephemeral() leave persistence off."""
    assert not BrokerSettings().persistence.enable
    assert not BrokerSettings.ephemeral().persistence.enable


def test_defaults_are_documented_values() -> None:
    """Without a file the store would be data/edgemq.db, fsynced on every commit."""
    persistence = BrokerSettings().persistence
    assert (persistence.path, persistence.sync) == ("data/edgemq.db", "always")


def test_relative_path_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative persistence.path in a file names a file beside it, whatever the current directory."""
    monkeypatch.chdir(tmp_path)
    conf = write(conf_dir(tmp_path), 'persistence { enable = true, path = "state/store.db" }')
    settings = ConfigSource(conf).load()
    assert settings.persistence.store_path == tmp_path / "etc" / "state" / "store.db"


def test_relative_config_file_name_still_gives_an_absolute_store_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--conf etc/edgemq.conf (a relative name) resolves the store against etc/ as an absolute path."""
    write(conf_dir(tmp_path), "persistence.enable = true")
    monkeypatch.chdir(tmp_path)
    settings = ConfigSource(Path("etc/edgemq.conf")).load()
    assert settings.persistence.path == str(tmp_path / "etc" / "data" / "edgemq.db")


def test_path_in_an_included_file_is_relative_to_that_file(tmp_path: Path) -> None:
    """A relative path written in an included file is relative to the included file's directory."""
    directory = conf_dir(tmp_path)
    (directory / "parts").mkdir()
    write(directory / "parts", 'path = "store.db"', name="persistence.conf")
    conf = write(directory, 'persistence { include "parts/persistence.conf" }')
    assert ConfigSource(conf).load().persistence.store_path == directory / "parts" / "store.db"


def test_absolute_path_is_kept(tmp_path: Path) -> None:
    """An absolute persistence.path is used as written."""
    conf = write(conf_dir(tmp_path), f'persistence.path = "{tmp_path / "x.db"}"')
    assert ConfigSource(conf).load().persistence.store_path == tmp_path / "x.db"


def test_without_a_file_the_path_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings built without a file resolve a relative store path against the current directory."""
    monkeypatch.chdir(tmp_path)
    assert BrokerSettings().persistence.store_path == tmp_path / "data" / "edgemq.db"


def test_environment_enables_persistence(tmp_path: Path) -> None:
    """EDGEMQ_PERSISTENCE__ENABLE=true and EDGEMQ_PERSISTENCE__SYNC=batched reach the settings."""
    conf = write(conf_dir(tmp_path), "")
    env = {"EDGEMQ_PERSISTENCE__ENABLE": "true", "EDGEMQ_PERSISTENCE__SYNC": "batched"}
    persistence = ConfigSource(conf, env=env).load().persistence
    assert (persistence.enable, persistence.sync) == (True, "batched")


def test_environment_path_is_relative_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative EDGEMQ_PERSISTENCE__PATH is relative to the current directory, not the file's."""
    monkeypatch.chdir(tmp_path)
    conf = write(conf_dir(tmp_path), "")
    settings = ConfigSource(conf, env={"EDGEMQ_PERSISTENCE__PATH": "run/edgemq.db"}).load()
    assert settings.persistence.store_path == tmp_path / "run" / "edgemq.db"


def test_loading_leaves_the_layers_as_written(tmp_path: Path) -> None:
    """Resolving a relative path changes neither the command-line layer nor a requested change."""
    conf = write(conf_dir(tmp_path), "")
    cli = {"persistence": {"path": "a.db"}}
    change = {"persistence": {"path": "b.db"}}
    ConfigSource(conf, cli=cli).load(override=change)
    assert (cli, change) == ({"persistence": {"path": "a.db"}}, {"persistence": {"path": "b.db"}})


@pytest.mark.parametrize("sync", ["always", "batched", "off"])
def test_every_sync_mode_is_accepted(tmp_path: Path, sync: str) -> None:
    """persistence.sync takes always, batched and off."""
    conf = write(tmp_path, f"persistence.sync = {sync}")
    assert ConfigSource(conf).load().persistence.sync == sync


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("persistence.sync = sometimes", "persistence.sync"),
        ("persistence.enable = 3", "persistence.enable"),
        ('persistence.enable = "true"', "persistence.enable"),
        ("persistence.path = 7", "persistence.path"),
        ("persistence.colour = blue", "persistence.colour"),
        ("sqlite.enable = maybe", "sqlite.enable"),
        ("sqlite.disk_cache_size = 0", "sqlite.disk_cache_size"),
        ("sqlite.resend_interval = -1", "sqlite.resend_interval"),
        ("sqlite.colour = blue", "sqlite.colour"),
    ],
)
def test_wrong_value_names_file_line_and_key(tmp_path: Path, text: str, key: str) -> None:
    """A wrong type, an unknown sync mode or an unknown key is an error naming the file, line and key."""
    conf = write(tmp_path, f"mqtt.max_mqueue_len = 10\n{text}\n")
    [problem] = problems(ConfigSource(conf))
    assert problem.startswith(f"{conf}:2: {key}: ")


def test_empty_path_is_refused(tmp_path: Path) -> None:
    """An empty persistence.path is an error that says so."""
    conf = write(tmp_path, 'persistence.path = ""')
    assert problems(ConfigSource(conf)) == [
        f"{conf}:1: persistence.path: must not be empty (name the store file, e.g. data/edgemq.db)"
    ]


def test_directory_path_is_refused(tmp_path: Path) -> None:
    """A persistence.path ending in / names a directory and is an error."""
    conf = write(tmp_path, 'persistence.path = "data/"')
    [problem] = problems(ConfigSource(conf))
    assert "persistence.path: names a directory" in problem


def test_empty_mounted_file_path_is_refused(tmp_path: Path) -> None:
    """An empty sqlite.mounted_file_path is an error."""
    conf = write(tmp_path, 'sqlite.mounted_file_path = ""')
    [problem] = problems(ConfigSource(conf))
    assert problem.startswith(f"{conf}:1: sqlite.mounted_file_path: must not be empty")


@pytest.mark.parametrize("command", ["check-config", "start"])
def test_the_command_refuses_a_faulty_persistence_section(tmp_path: Path, command: str) -> None:
    """edgemq check-config and edgemq start exit 2 on an unknown sync mode."""
    conf = write(tmp_path, "persistence { enable = true, sync = sometimes }")
    args = ["check-config", str(conf)] if command == "check-config" else ["start", "--conf", str(conf)]
    assert main(args) == 2


NANOMQ_SQLITE = """sqlite {
    enable = true
    disk_cache_size = 102400
    mounted_file_path = "/var/lib/nanomq/"
    flush_mem_threshold = 100
    resend_interval = 5000
}
"""


def test_nanomq_sqlite_section_loads_and_turns_persistence_on(tmp_path: Path) -> None:
    """NanoMQ's sqlite section loads unchanged: persistence on, the store in mounted_file_path."""
    persistence = ConfigSource(write(tmp_path, NANOMQ_SQLITE)).load().persistence
    assert (persistence.enable, persistence.path) == (True, "/var/lib/nanomq/edgemq.db")


def test_sqlite_enable_alone_keeps_the_default_path(tmp_path: Path) -> None:
    """sqlite.enable without mounted_file_path stores beside the file, not in NanoMQ's /tmp/."""
    directory = conf_dir(tmp_path)
    persistence = ConfigSource(write(directory, "sqlite.enable = true")).load().persistence
    assert (persistence.enable, persistence.store_path) == (True, directory / "data" / "edgemq.db")


def test_persistence_enable_wins_over_sqlite_enable(tmp_path: Path) -> None:
    """persistence.enable = false keeps persistence off whatever sqlite.enable says."""
    conf = write(tmp_path, "persistence.enable = false\nsqlite.enable = true")
    assert not ConfigSource(conf).load().persistence.enable


def test_sqlite_enable_in_environment_yields_to_the_file(tmp_path: Path) -> None:
    """persistence.enable in the file wins over EDGEMQ_SQLITE__ENABLE (any layer's persistence key counts)."""
    conf = write(tmp_path, "persistence.enable = false")
    assert not ConfigSource(conf, env={"EDGEMQ_SQLITE__ENABLE": "true"}).load().persistence.enable


def test_persistence_path_wins_over_mounted_file_path(tmp_path: Path) -> None:
    """persistence.path decides the store file even when sqlite.mounted_file_path is set."""
    conf = write(tmp_path, f'persistence.path = "{tmp_path / "p.db"}"\nsqlite.mounted_file_path = "/srv/"')
    assert ConfigSource(conf).load().persistence.store_path == tmp_path / "p.db"


def test_relative_mounted_file_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    """A relative sqlite.mounted_file_path is a directory beside the configuration file."""
    directory = conf_dir(tmp_path)
    conf = write(directory, 'sqlite { enable = true, mounted_file_path = "nano" }')
    assert ConfigSource(conf).load().persistence.store_path == directory / "nano" / "edgemq.db"


def test_folded_settings_survive_a_round_trip(tmp_path: Path) -> None:
    """Settings dumped and validated again (as a restart or live change does) keep the folded store."""
    settings = ConfigSource(write(tmp_path, NANOMQ_SQLITE)).load()
    assert BrokerSettings.model_validate(settings.model_dump()).persistence == settings.persistence


@pytest.mark.parametrize(
    "change",
    [
        {"persistence": {"sync": "off"}},
        {"persistence": {"enable": True}},
        {"persistence": {"path": "elsewhere.db"}},
        {"sqlite": {"resend_interval": 100}},
    ],
)
def test_config_api_change_waits_for_a_restart(tmp_path: Path, change: dict[str, dict[str, object]]) -> None:
    """A req 12 change of persistence or sqlite keys is restart-only: the running store is unchanged."""
    source = ConfigSource(write(tmp_path, ""))
    running = source.load()
    planned = plan_change(source, running, change)
    assert planned.restart_required
    assert all(key.startswith(("persistence.", "sqlite.")) for key in planned.restart_required)
    assert planned.running.persistence == running.persistence


def test_config_api_change_keeps_the_relative_path_as_written(tmp_path: Path) -> None:
    """A requested relative path is written to the override file as given and resolved beside it."""
    directory = conf_dir(tmp_path)
    source = ConfigSource(write(directory, ""))
    planned = plan_change(source, source.load(), {"persistence": {"path": "other.db"}})
    assert planned.override == {"persistence": {"path": "other.db"}}
    assert source.load(override=planned.override).persistence.store_path == directory / "other.db"


@pytest.mark.parametrize("change", [{"persistence": {"enable": True}}, {"sqlite": {"enable": True}}])
def test_live_change_of_store_keys_is_refused(change: dict[str, dict[str, object]]) -> None:
    """A live change (/reload) of persistence or sqlite keys is refused, naming the key and the restart."""
    with pytest.raises(ConfigError) as caught:
        plan_live_change(BrokerSettings.ephemeral(), change)
    section = next(iter(change))
    assert caught.value.problems == [f"{section}.enable: cannot change without a restart (use v1 req 12)"]


def test_fixture_with_a_config_file_stays_in_memory() -> None:
    """@pytest.mark.edgemq(conf=...) of a file with persistence on still gives a memory-only broker."""
    settings, _ = settings_for_test({"conf": str(CONFIG_DIR / "edgemq.conf")})
    assert not settings.persistence.enable


def test_fixture_settings_can_enable_persistence(tmp_path: Path) -> None:
    """@pytest.mark.edgemq(settings=...) with persistence on passes it to the broker."""
    wanted = Persistence(enable=True, path=str(tmp_path / "t.db"), sync="off")
    settings, _ = settings_for_test({"settings": BrokerSettings.ephemeral().model_copy(update={"persistence": wanted})})
    assert settings.persistence == wanted
