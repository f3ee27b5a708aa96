"""MQTT client authentication from the ``auth`` section: anonymous access and a password list.

Passwords are compared in constant time. A stored value starting with ``$argon2`` is an
argon2 hash (pwdlib, already installed with amqtt; argon2id is the memory-hard scheme OWASP
recommends), verified on a worker thread so a slow hash never stalls the event loop. Create
one with ``edgemq hash-password``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from pathlib import Path

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from broker.config.settings import Auth

__all__ = ["ClientAuthenticator", "PasswordFileError", "hash_password", "read_password_file"]

_HASHER = PasswordHash((Argon2Hasher(),))
_ARGON2_PREFIX = "$argon2"


class PasswordFileError(Exception):
    """A password file that cannot be read or has a malformed line."""


def hash_password(password: str) -> str:
    """An argon2id hash to store instead of ``password``."""
    return _HASHER.hash(password)


def read_password_file(path: str) -> dict[str, str]:
    """``username:password`` lines; blank lines and ``#`` comments are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"{path}: {exc}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        username, colon, password = line.partition(":")
        if not colon or not username.strip() or not password.strip():
            raise PasswordFileError(f"{path}:{number}: expected username:password")
        users[username.strip()] = password.strip()
    return users


class ClientAuthenticator:
    """Decides CONNECTs from the current ``auth`` settings (re-read on every connect)."""

    def __init__(self, auth_settings: Callable[[], Auth]) -> None:
        self._auth_settings = auth_settings
        self._file_cache: tuple[str, float, dict[str, str]] | None = None

    def users(self) -> dict[str, str]:
        """The password list: ``auth.password`` plus the password file (re-read when it changes)."""
        auth = self._auth_settings()
        users = dict(auth.password)
        if auth.password_file:
            mtime = Path(auth.password_file).stat().st_mtime
            cached = self._file_cache
            if cached is None or cached[0] != auth.password_file or cached[1] != mtime:
                cached = (auth.password_file, mtime, read_password_file(auth.password_file))
                self._file_cache = cached
            users.update(cached[2])
        return users

    def anonymous_verdict(self, username: str | None) -> bool | None:
        """Whether a client without a user name may connect, when that needs no password list
        (there is no password file: a broken one refuses every client); None otherwise."""
        if username:
            return None
        auth = self._auth_settings()
        return None if auth.password_file else auth.allow_anonymous

    async def authenticate(self, username: str | None, password: str | bytes | None) -> bool:
        """Whether a client with these credentials may connect (with no other check configured)."""
        return await self.verdict(username, password) is not False

    async def verdict(self, username: str | None, password: str | bytes | None) -> bool | None:
        """The password list's answer: True or False; without a list, a username is admitted when
        ``allow_anonymous`` is true, and otherwise gets None: nothing here can check it (alone,
        ``allow_anonymous = false`` asks for a username and nothing more; beside auth plugins,
        one of them must vouch for it)."""
        verdict = self.anonymous_verdict(username)
        if verdict is not None:
            return verdict
        auth = self._auth_settings()
        users = self.users()  # a broken password file raises: the client is refused
        if not username:
            return auth.allow_anonymous
        if not users:
            return True if auth.allow_anonymous else None
        stored = users.get(username)
        if stored is None or password is None:
            return False
        given = password.decode("utf-8", "replace") if isinstance(password, bytes) else password
        if stored.startswith(_ARGON2_PREFIX):
            return await asyncio.to_thread(_HASHER.verify, given, stored)
        return hmac.compare_digest(given.encode(), stored.encode())
