"""MQTT client authentication (broker/mqtt/client_auth.py): anonymous clients and the password file."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config.settings import Auth
from broker.mqtt.client_auth import ClientAuthenticator, PasswordFileError

pytestmark = pytest.mark.anyio


def _authenticator(**options: object) -> ClientAuthenticator:
    auth = Auth.model_validate(options)
    return ClientAuthenticator(lambda: auth)


@pytest.mark.parametrize("allowed", [True, False])
async def test_anonymous_client_follows_allow_anonymous(allowed: bool) -> None:
    """Without a password file, a client without a user name is settled by allow_anonymous alone."""
    authenticator = _authenticator(allow_anonymous=allowed)
    assert authenticator.anonymous_verdict(None) is allowed
    assert await authenticator.authenticate(None, None) is allowed


async def test_broken_password_file_refuses_anonymous_clients_too(tmp_path: Path) -> None:
    """A password file that cannot be read fails closed, for clients without a user name as well."""
    authenticator = _authenticator(allow_anonymous=True, password_file=str(tmp_path / "missing"))
    assert authenticator.anonymous_verdict(None) is None
    with pytest.raises((OSError, PasswordFileError)):
        await authenticator.authenticate(None, None)


async def test_user_name_is_checked_against_the_password_file(tmp_path: Path) -> None:
    """A client with a user name is always checked; anonymous_verdict leaves it to authenticate."""
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:secret\n")
    authenticator = _authenticator(allow_anonymous=False, password_file=str(passwd))
    assert authenticator.anonymous_verdict("alice") is None
    assert await authenticator.authenticate("alice", b"secret") is True
    assert await authenticator.authenticate("alice", b"wrong") is False
