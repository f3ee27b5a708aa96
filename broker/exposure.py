"""Warnings at start-up about what a configuration exposes (security by default: the admin API
and MQTT listeners reachable beyond this host without credentials)."""

from __future__ import annotations

import logging

from broker.config.settings import BrokerSettings
from broker.config.values import is_loopback

__all__ = ["warn_about_exposure"]

log = logging.getLogger("edgemq")


def warn_about_exposure(settings: BrokerSettings) -> None:
    """Warn about default credentials or no authentication on a non-loopback bind, anonymous MQTT
    clients on one, and a password-less setup that admits any username."""
    http = settings.http_server
    if http.uses_default_password and not is_loopback(http.ip_addr):
        log.warning(
            "the admin API listens on %s with the default credentials: set http_server username/password",
            http.ip_addr,
        )
    if http.auth_type == "no_auth" and not is_loopback(http.ip_addr):
        log.warning("the admin API listens on %s without authentication (auth_type = no_auth)", http.ip_addr)
    if settings.auth.allow_anonymous:
        for name, listener in settings.listeners.configured():
            if not is_loopback(listener.address[0]):
                log.warning(
                    "MQTT listener %s on %s admits anonymous clients: set auth.allow_anonymous = false",
                    name,
                    listener.bind,
                )
    elif not (settings.auth.password or settings.auth.password_file or settings.plugins or settings.auth.http_auth):
        log.warning("auth.allow_anonymous is false but there is no password list: any username is admitted")
