"""The ``edgemq`` command: run a broker until SIGINT or SIGTERM (the only signal handling)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from broker.lifecycle import EdgeBroker
from broker.settings import Auth, BrokerSettings, HttpServer, MqttListener

__all__ = ["main"]

log = logging.getLogger("edgemq")


def build_parser() -> argparse.ArgumentParser:
    """The command line: every flag has the contract's default."""
    defaults = BrokerSettings()
    parser = argparse.ArgumentParser(prog="edgemq", description="MQTT broker with a NanoMQ-compatible admin API.")
    mqtt = parser.add_argument_group("MQTT listener")
    mqtt.add_argument("--mqtt-host", default=defaults.mqtt.host, help="address to listen on (default %(default)s)")
    mqtt.add_argument(
        "--mqtt-port", type=int, default=defaults.mqtt.port, help="0 picks a free port (default %(default)s)"
    )
    mqtt.add_argument("--no-anonymous", action="store_true", help="refuse MQTT clients that give no username")
    http = parser.add_argument_group("admin API")
    http.add_argument("--http-host", default=defaults.http_server.ip_addr, help="address (default %(default)s)")
    http.add_argument(
        "--http-port", type=int, default=defaults.http_server.port, help="0 picks a free port (default %(default)s)"
    )
    http.add_argument(
        "--admin-user", default=defaults.http_server.username, help="Basic auth user (default %(default)s)"
    )
    http.add_argument(
        "--admin-password",
        default=defaults.http_server.password,
        help="Basic auth password (default: public; set it whenever the API is not on loopback)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default %(default)s)"
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> BrokerSettings:
    """Settings from parsed flags."""
    return BrokerSettings(
        mqtt=MqttListener(host=args.mqtt_host, port=args.mqtt_port),
        http_server=HttpServer(
            ip_addr=args.http_host, port=args.http_port, username=args.admin_user, password=args.admin_password
        ),
        auth=Auth(allow_anonymous=not args.no_anonymous),
    )


async def serve(settings: BrokerSettings) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with EdgeBroker(settings):
            await stop.wait()
            log.info("signal received, shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgemq`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(settings_from_args(args)))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
