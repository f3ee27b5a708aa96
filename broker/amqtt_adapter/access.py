"""Who may connect and which topics a client may use: one chain of checks.

In order: edgemq's password list (``auth.password``, ``auth.password_file``, ``allow_anonymous``)
and ACL (``auth.acl``), NanoMQ's ``auth.http_auth``, then the auth and topic plugins of the
``plugins`` section in their configured order. Each check answers allow, refuse or nothing
(None: it abstains). ``auth.plugin_mode`` combines them:

- ``restrict`` (default): edgemq's own check first and it must allow; then every other check that
  answers must allow. A plugin can only narrow what edgemq allows.
- ``decide``: the other checks answer first; if any answers, all that answer must allow; if
  all abstain, edgemq's own check decides.

A check that raises or does not answer within ``auth.plugin_timeout`` (HTTP: ``http_auth.timeout``)
refuses, and says so in the log: a broken or hanging auth server fails closed, never open and
never stuck.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

from broker.config.settings import LiveSettings
from broker.mqtt.acl import Action as AclAction
from broker.mqtt.acl import Client as AclClient
from broker.mqtt.acl import allowed as acl_allows
from broker.mqtt.client_auth import ClientAuthenticator, PasswordFileError
from broker.mqtt.http_auth import Access, ClientAccess, ClientFacts, HttpAuthenticator

__all__ = ["AccessChain"]

log = logging.getLogger("edgemq.mqtt")

_ACL_ACTIONS: dict[Action, AclAction] = {
    Action.PUBLISH: "publish",
    Action.SUBSCRIBE: "subscribe",
    Action.RECEIVE: "receive",
}
_HTTP_ACCESS: dict[Action, Access] = {Action.SUBSCRIBE: 1, Action.PUBLISH: 2}

Verdict = bool | None
Check = Callable[[], Awaitable[Verdict]]
NamedCheck = tuple[str, Check, float]  # who answers, the call, seconds it may take


def _facts(session: Session) -> ClientFacts:
    password = session.password
    text = password.decode("utf-8", "replace") if isinstance(password, bytes) else password
    return ClientFacts(session.client_id, session.username, text, session.remote_address, session.remote_port)


def _http_access(session: Session) -> ClientAccess:
    """What http_auth learned of the session's connection (a session made without a CONNECT,
    by a plugin, starts with nothing known)."""
    known = getattr(session, "http_access", None)
    if not isinstance(known, ClientAccess):
        known = session.http_access = ClientAccess()
    return known


def _combined(own: bool, others: list[Verdict], mode: str) -> bool:
    answered = [verdict for verdict in others if verdict is not None]
    if mode == "decide" and answered:
        return all(answered)
    return own and all(answered)


class AccessChain:
    """The checks of one broker: edgemq's, ``http_auth`` and the plugins amqtt loaded."""

    def __init__(
        self,
        settings: LiveSettings,
        authenticator: ClientAuthenticator,
        plugins: list[BasePlugin[Any]],
    ) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._http = HttpAuthenticator(lambda: settings.current.auth)
        self._auth_plugins = [p for p in plugins if isinstance(p, BaseAuthPlugin)]
        self._topic_plugins = [p for p in plugins if isinstance(p, BaseTopicPlugin)]

    # -- CONNECT -------------------------------------------------------------------------

    async def authenticate(self, session: Session) -> bool:
        """Whether the client of ``session`` may connect."""
        auth = self._settings.current.auth
        if not self._auth_plugins and (auth.http_auth is None or auth.http_auth.auth_req is None):
            verdict = self._authenticator.anonymous_verdict(session.username)  # settled without awaiting
            return verdict if verdict is not None else await self._password_verdict(session)
        if auth.plugin_mode == "restrict" and not await self._password_verdict(session):
            return False
        session.http_access = ClientAccess()  # what http_auth learns of this connection (resumed sessions copy it)
        checks = [self._http_check(partial(self._http.authenticate, _facts(session), session.http_access))]
        checks += [
            (_name(p), partial(p.authenticate, session=session), auth.plugin_timeout) for p in self._auth_plugins
        ]
        others = await _ask_all(checks, f"CONNECT of {session.client_id}")
        if auth.plugin_mode == "decide" and not any(v is not None for v in others):
            return await self._password_verdict(session)
        return _combined(True, others, auth.plugin_mode)

    async def _password_verdict(self, session: Session) -> bool:
        """edgemq's password list; a broken one refuses the client and says why."""
        try:
            return await self._authenticator.authenticate(session.username, session.password)
        except (OSError, PasswordFileError) as exc:
            log.error("cannot check the password of %s: %s", session.client_id, exc)
            return False

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    # -- topics --------------------------------------------------------------------------

    @property
    def checks_topics(self) -> bool:
        """Whether topics must be checked at all: the ACL has rules or denies by default, or
        ``http_auth.acl_req`` or a topic plugin is configured (read live)."""
        acl = self._settings.current.acl
        return bool(acl.rules) or acl.no_match == "deny" or bool(self._topic_plugins) or self._http.checks_topics

    async def topic_allowed(self, session: Session, topic: str, action: Action) -> bool:
        """Whether the client of ``session`` may publish to, subscribe to or receive ``topic``."""
        kind = _ACL_ACTIONS[action]
        client = AclClient(session.client_id, session.username, session.remote_address)
        own = acl_allows(self._settings.current.acl, client, kind, topic)
        auth = self._settings.current.auth
        checks: list[NamedCheck] = []
        if own or auth.plugin_mode == "decide":
            if (access := _HTTP_ACCESS.get(action)) is not None:
                known = _http_access(session)
                checks.append(self._http_check(partial(self._http.allowed, _facts(session), known, access, topic)))
            checks += [
                (_name(p), partial(p.topic_filtering, session=session, topic=topic, action=action), auth.plugin_timeout)
                for p in self._topic_plugins
            ]
        others = await _ask_all(checks, f"{kind} {topic} by {session.client_id}")
        verdict = _combined(own, others, auth.plugin_mode)
        if not verdict:
            log.info("ACL: %s may not %s %s", session.client_id, kind, topic)
        return verdict

    def _http_check(self, check: Check) -> NamedCheck:
        """``http_auth``'s request, given its own time limits (connecting, then answering)."""
        settings = self._http.settings
        limit = settings.connect_timeout + settings.timeout if settings is not None else 1.0
        return ("http_auth", check, limit)


async def _ask_all(checks: list[NamedCheck], what: str) -> list[Verdict]:
    """Each check's answer in order, up to the first refusal (the rest cannot change it)."""
    verdicts: list[Verdict] = []
    for name, check, timeout in checks:
        verdict = await _ask(name, check, what, timeout)
        verdicts.append(verdict)
        if verdict is False:
            break
    return verdicts


def _name(plugin: BasePlugin[Any]) -> str:
    return type(plugin).__name__


async def _ask(name: str, check: Check, what: str, timeout: float) -> Verdict:
    """One check's answer: None abstains; one that raises or takes too long refuses."""
    try:
        async with asyncio.timeout(timeout):
            verdict = await check()
    except TimeoutError:
        log.warning("%s did not answer about the %s within %ss: refused", name, what, timeout)
        return False
    except Exception as exc:  # a plugin's fault refuses this client, never the broker
        log.warning("%s failed on the %s (%s: %s): refused", name, what, exc.__class__.__name__, exc)
        return False
    return None if verdict is None else bool(verdict)
