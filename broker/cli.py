"""The ``edgemq`` command. Signal handling lives here and nowhere else.

edgemq [start] [--conf FILE] [flags]   run the broker (no file needed: defaults)
edgemq check-config FILE               validate a configuration file
edgemq hash-password                   print an argon2 hash for the password list
edgemq --version                       print ``edgemq <version>``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from admin_api.v4_broker import edgemq_version
from broker.amqtt_adapter import PluginError, check_plugins
from broker.config.settings import BrokerSettings
from broker.config.source import ConfigError, ConfigSource
from broker.lifecycle import EdgeBroker
from broker.log_output import log_output
from broker.mqtt.client_auth import ClientAuthenticator, PasswordFileError, hash_password
from broker.persistence.store import StoreError

__all__ = ["main"]

log = logging.getLogger("edgemq")

EXIT_INVALID_CONFIG = 2
SERVER_GC_THRESHOLDS = (50_000, 50, 100)
"""CPython's defaults (700, 10, 10) suit scripts; a broker keeps many objects per client, and with
the defaults the collector took about a quarter of the time of a connect (py-spy, 16 000 clients).
Set by the ``edgemq`` command only: an embedded broker leaves its host process's collector alone."""


def _start_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", type=Path, help="HOCON configuration file (NanoMQ layout)")
    mqtt = parser.add_argument_group("MQTT listener (listeners.tcp)")
    mqtt.add_argument("--mqtt-host", help="address to listen on (default 127.0.0.1)")
    mqtt.add_argument("--mqtt-port", type=int, help="0 picks a free port (default 1883)")
    mqtt.add_argument("--no-anonymous", action="store_true", help="refuse MQTT clients that give no username")
    http = parser.add_argument_group("admin API (http_server)")
    http.add_argument("--http-host", help="address (default 127.0.0.1)")
    http.add_argument("--http-port", type=int, help="0 picks a free port (default 8081)")
    http.add_argument("--admin-user", help="Basic auth user (default admin)")
    http.add_argument("--admin-password", help="Basic auth password (default public)")
    parser.add_argument("--log-level", choices=["debug", "info", "warn", "error"], help="(default info)")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop even if uvloop is there")


def build_parser() -> argparse.ArgumentParser:
    """``start`` (the default), ``check-config`` and ``hash-password``."""
    parser = argparse.ArgumentParser(prog="edgemq", description="MQTT broker with a NanoMQ-compatible admin API.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {edgemq_version()}")
    commands = parser.add_subparsers(dest="command")
    _start_parser(commands.add_parser("start", help="run the broker (the default)"))
    check = commands.add_parser("check-config", help="validate a configuration file; exit 0 or 2")
    check.add_argument("file", type=Path)
    commands.add_parser("hash-password", help="read a password, print its argon2 hash")
    return parser


def cli_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags set (only flags that were given)."""
    layer: dict[str, Any] = {}
    defaults = BrokerSettings()
    if args.mqtt_host is not None or args.mqtt_port is not None:
        assert defaults.listeners.tcp is not None
        host, port = defaults.listeners.tcp.address
        host = args.mqtt_host if args.mqtt_host is not None else host
        port = args.mqtt_port if args.mqtt_port is not None else port
        layer["listeners"] = {"tcp": {"bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}"}}
    http = {
        key: value
        for key, value in {
            "ip_addr": args.http_host,
            "port": args.http_port,
            "username": args.admin_user,
            "password": args.admin_password,
        }.items()
        if value is not None
    }
    if http:
        layer["http_server"] = http
    if args.no_anonymous:
        layer["auth"] = {"allow_anonymous": False}
    if args.log_level is not None:
        layer["log"] = {"level": args.log_level}
    return layer


async def serve(broker: EdgeBroker) -> None:
    """Run until SIGINT, SIGTERM or an admin API stop request, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, broker.request_stop)
    try:
        async with broker:
            await broker.wait_for_stop_request()
            log.info("stop requested, shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _start(args: argparse.Namespace) -> int:
    source = ConfigSource(path=args.conf, env=dict(os.environ), cli=cli_layer(args))
    try:
        settings = source.load()
    except ConfigError as exc:
        print(f"edgemq: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    with log_output(settings.log):
        gc.set_threshold(*SERVER_GC_THRESHOLDS)
        log.debug("garbage collector thresholds %s", gc.get_threshold())
        try:
            with asyncio.Runner(loop_factory=None if args.no_uvloop else _uvloop_factory()) as runner:
                runner.run(serve(EdgeBroker(settings, config=source if args.conf else None)))
        except (StoreError, PluginError) as exc:  # a damaged store, a plugin that cannot load: a bad configuration
            log.error("cannot start: %s", exc)
            return EXIT_INVALID_CONFIG
        except (OSError, PasswordFileError) as exc:
            log.error("cannot start: %s", exc)
            return 1
    return 0


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (Linux and macOS), else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    log.debug("using uvloop")
    return uvloop.new_event_loop


def _check_config(path: Path) -> int:
    try:
        settings = ConfigSource(path=path).load()
        ClientAuthenticator(lambda: settings.auth).users()
        check_plugins(settings.plugins)
    except (ConfigError, PasswordFileError, PluginError, OSError) as exc:
        print(f"{path}: invalid\n{exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    listeners = ", ".join(f"{name} {listener.bind}" for name, listener in settings.listeners.configured())
    http = settings.http_server
    print(f"{path}: ok (MQTT {listeners}; admin API {http.ip_addr}:{http.port}; {len(settings.bridges.mqtt)} bridges)")
    return 0


def _hash_password() -> int:
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("edgemq: empty password", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    print(hash_password(password))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgemq`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in ("-h", "--help", "--version")):
        arguments.insert(0, "start")
    args = build_parser().parse_args(arguments)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "hash-password":
        return _hash_password()
    return _start(args)
