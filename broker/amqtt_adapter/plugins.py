"""edgemq's amqtt plugins: client authentication and the topic ACL, asked through amqtt's
plugin manager so that users' own auth and topic plugins sit beside them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker.mqtt.acl import Action as AclAction
from broker.mqtt.acl import Client as AclClient
from broker.mqtt.acl import allowed as acl_allows
from broker.mqtt.client_auth import ClientAuthenticator, PasswordFileError

__all__ = ["EdgeAclPlugin", "EdgeAuthPlugin"]

log = logging.getLogger("edgemq.mqtt")


class EdgeAuthPlugin(BaseAuthPlugin):
    """Asks edgemq's ClientAuthenticator; never marks a session anonymous (amqtt would drop it)."""

    @dataclass
    class Config:
        """Options, loaded by amqtt's plugin manager."""

        authenticator: Any = None

    def verdict_without_password(self, session: Session) -> bool | None:
        """The decision for a client without a user name, which needs no password list; None
        for the others (``authenticate``)."""
        authenticator: ClientAuthenticator = self.config.authenticator
        return authenticator.anonymous_verdict(session.username)

    async def authenticate(self, *, session: Session) -> bool:
        """Decide one CONNECT; a broken password list refuses the client and says why."""
        authenticator: ClientAuthenticator = self.config.authenticator
        try:
            return await authenticator.authenticate(session.username, session.password)
        except (OSError, PasswordFileError) as exc:
            log.error("cannot check the password of %s: %s", session.client_id, exc)
            return False


_ACL_ACTIONS: dict[Action, AclAction] = {
    Action.PUBLISH: "publish",
    Action.SUBSCRIBE: "subscribe",
    Action.RECEIVE: "receive",
}


class EdgeAclPlugin(BaseTopicPlugin):
    """Asks edgemq's ACL (broker/mqtt/acl.py) for SUBSCRIBE, PUBLISH and RECEIVE; loaded only with rules."""

    @dataclass
    class Config:
        """Options, loaded by amqtt's plugin manager."""

        acl: Any = None  # a callable returning the current broker.config.settings.Acl

    async def topic_filtering(self, *, session: Session, topic: str, action: Action) -> bool:
        """True to allow; a refused SUBSCRIBE gets 0x80 in SUBACK (3.9.3)."""
        kind = _ACL_ACTIONS[action]
        client = AclClient(session.client_id, session.username, session.remote_address)
        verdict = acl_allows(self.config.acl(), client, kind, topic)
        if not verdict:
            log.info("ACL: %s may not %s %s", session.client_id, kind, topic)
        return verdict
