"""The ``plugins`` section: plugins by class path or registered name, refused with their name at
``check-config`` and at start (exit 2); amqtt's ``$SYS`` plugin publishing to subscribers."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker import EdgeBroker
from broker.amqtt_adapter import PluginError
from broker.cli import main
from tests.helpers import ephemeral_settings, mqtt_client, next_message, running_broker
from tests.integration.readme_runs import run_to_end

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ('"tests.plugin_examples.NoSuchPlugin" {}', "plugins.tests.plugin_examples.NoSuchPlugin: cannot import it"),
        ('"no_such_module.Plugin" {}', "plugins.no_such_module.Plugin: cannot import it"),
        ("no_such_name {}", "plugins.no_such_name: no plugin of that name"),
        ('"tests.helpers.WAIT" {}', "plugins.tests.helpers.WAIT: not an amqtt plugin class"),
        (
            '"tests.plugin_examples.RecordingPlugin" { colour = blue }',
            'plugins.tests.plugin_examples.RecordingPlugin: can not match "colour"',
        ),
        (
            '"amqtt.plugins.sys.broker.BrokerSysPlugin" { sys_interval = soon }',
            'plugins.amqtt.plugins.sys.broker.BrokerSysPlugin: wrong value type for field "sys_interval"',
        ),
    ],
    ids=["unknown-class", "unknown-module", "unknown-name", "not-a-plugin", "unknown-option", "wrong-type"],
)
def test_check_config_refuses_a_plugin_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: str, error: str
) -> None:
    """A plugin that cannot be loaded as configured: exit 2 and an error naming the plugin."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(f"plugins {{\n  {block}\n}}\n")
    assert main(["check-config", str(conf)]) == 2
    assert error in capsys.readouterr().err


def test_check_config_accepts_plugins_by_path_and_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A class path with options and a name amqtt registers (broker_sys) both check out."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(
        'plugins {\n  "tests.plugin_examples.RecordingPlugin" { key = a }\n  broker_sys { sys_interval = 5 }\n}\n'
    )
    assert main(["check-config", str(conf)]) == 0, capsys.readouterr().err


async def test_the_command_refuses_to_start_with_a_broken_plugin(tmp_path: Path) -> None:
    """`edgemq --conf` with a plugin that cannot load: exit 2 naming it, nothing served."""
    conf = tmp_path / "edgemq.conf"
    conf.write_text(
        'listeners.tcp.bind = "127.0.0.1:0"\nhttp_server.port = 0\nplugins { "no_such_module.Plugin" {} }\n'
    )
    code, err = await run_to_end("start", "--conf", str(conf))
    assert code == 2
    assert "plugins.no_such_module.Plugin: cannot import it" in err
    assert "edgemq ready" not in err


async def test_the_embedding_api_refuses_a_broken_plugin() -> None:
    """EdgeBroker with a plugin that cannot load raises PluginError on entry, leaving nothing running."""
    settings = ephemeral_settings(plugins={"tests.plugin_examples.RecordingPlugin": {"colour": "blue"}})
    with pytest.raises(PluginError, match="RecordingPlugin"):
        async with EdgeBroker(settings):
            pass


async def test_the_sys_plugin_publishes_sys_topics() -> None:
    """amqtt's BrokerSysPlugin, by its registered name: $SYS/broker/... reaches a $SYS/# subscriber."""
    async with (
        running_broker(ephemeral_settings(plugins={"broker_sys": {"sys_interval": 1}})) as broker,
        mqtt_client(broker, "watcher") as watcher,
    ):
        await watcher.subscribe("$SYS/#")
        first = await next_message(watcher)  # the retained version topic, at once
        assert (str(first.topic), first.retain) == ("$SYS/broker/version", True)
        topics = {str((await next_message(watcher)).topic) for _ in range(5)}
        assert topics & {"$SYS/broker/uptime", "$SYS/broker/load/bytes/received", "$SYS/broker/clients/connected"}


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("auth_anonymous", {"allow_anonymous": True}),
        ("event_logger_plugin", {}),
        ("packet_logger_plugin", {}),
        ("topic_taboo", {}),
        # amqtt's ACL plugin reads subscriptions from its deprecated "acl" option only (it warns)
        pytest.param(
            "topic_acl",
            {"publish_acl": {"anonymous": ["t/#"]}, "acl": {"anonymous": ["t/#"]}},
            marks=pytest.mark.filterwarnings("ignore:The 'acl' option is deprecated:DeprecationWarning"),
        ),
    ],
)
async def test_each_registered_amqtt_plugin_loads_and_routing_works(name: str, options: dict[str, object]) -> None:
    """amqtt's own plugins by their registered names: loaded, and a client's message still goes round."""
    settings = ephemeral_settings(plugins={name: options})
    async with running_broker(settings) as broker, mqtt_client(broker, "c") as client:
        await client.subscribe("t/#", qos=1)
        await client.publish("t/1", b"x", qos=1)
        assert (await next_message(client)).payload == b"x"
