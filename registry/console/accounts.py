"""Console accounts: a role, an API token shown once, an optional password; only hashes are kept.

Tokens are 256-bit random secrets, so one sha256 suffices to store them; passwords are
chosen by people and get scrypt with a per-account salt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from registry.db.console_grant import secret_hash
from registry.db.models import Account, ConsoleSession
from registry.errors import AlreadyExists, InvalidName, NotFound, RegistryError
from registry.governance.authority import require_admin
from registry.util.refs import check_name

if TYPE_CHECKING:
    from registry.core import Core

ROLES = ("viewer", "reviewer", "admin")
TOKEN_PREFIX = "rgt_"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB and ~50 ms per check: slow for a guesser
MIN_PASSWORD = 10


@dataclass(frozen=True)
class User:
    """What a request knows about who it acts for."""

    name: str
    role: str
    created_at: datetime | None = None
    has_password: bool = False

    def can(self, right: str) -> bool:
        """Rights: read (every role), review (approve, deprecate, move aliases), admin (force)."""
        need = {"read": 0, "review": 1, "admin": 2}[right]
        return ROLES.index(self.role) >= need


def _user(a: Account) -> User:
    return User(a.name, a.role, a.created_at, a.password_hash is not None)


def token_hash(token: str) -> str:
    return secret_hash(token)  # as the library checks a token grant


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes: 256 bits


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    h = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${h.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    try:
        kind, n, r, p, salt, want = (stored or "").split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), want)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidName(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role


def add_user(core: Core, name: str, role: str) -> tuple[User, str]:
    """Create an account; returns it and its API token, which is never stored or shown again.

    A policy admin's act on every path (issue 31.2): the library checks, not only the CLI."""
    check_name(name, "account name")
    _check_role(role)
    require_admin(core, "account.add", f"account:{name}", "manage console accounts")
    token = new_token()

    def write() -> User:
        with core.Session.begin() as s:
            if s.scalar(select(Account).where(Account.name == name)) is not None:
                raise AlreadyExists(f"account {name} already exists")
            a = Account(name=name, role=role, token_hash=token_hash(token), created_by=core.actor)
            s.add(a)
            core.audit(s, "account.add", f"account:{name}", {"role": role})
            return User(name, role)

    return core.write(write), token


def list_users(core: Core) -> list[User]:
    with core.Session() as s:
        return [_user(a) for a in s.scalars(select(Account).order_by(Account.name))]


def remove_user(core: Core, name: str) -> None:
    """Delete the account and every browser session it holds; its audit trail stays."""
    require_admin(core, "account.remove", f"account:{name}", "manage console accounts")

    def write() -> None:
        with core.Session.begin() as s:
            a = s.scalar(select(Account).where(Account.name == name))
            if a is None:
                raise NotFound("account", name)
            s.execute(delete(ConsoleSession).where(ConsoleSession.account_id == a.id))
            s.delete(a)
            core.audit(s, "account.remove", f"account:{name}", {"role": a.role})

    core.write(write)


def set_password(core: Core, name: str, password: str) -> None:
    """Set (or replace) the password; the account's open browser sessions are ended."""
    require_admin(core, "account.password", f"account:{name}", "manage console accounts")
    if len(password) < MIN_PASSWORD:
        raise RegistryError(f"password too short: use at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)

    def write() -> None:
        with core.Session.begin() as s:
            a = s.scalar(select(Account).where(Account.name == name))
            if a is None:
                raise NotFound("account", name)
            a.password_hash = hashed
            s.execute(delete(ConsoleSession).where(ConsoleSession.account_id == a.id))
            core.audit(s, "account.password", f"account:{name}", {})

    core.write(write)


def by_token(core: Core, token: str) -> User | None:
    """The account holding this API token, or None (unknown and malformed tokens alike)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with core.Session() as s:
        a = s.scalar(select(Account).where(Account.token_hash == token_hash(token)))
        return _user(a) if a else None


def by_password(core: Core, name: str, password: str) -> User | None:
    with core.Session() as s:
        a = s.scalar(select(Account).where(Account.name == name))
    if a is None or a.password_hash is None:
        hash_password(password)  # the same work as a real check: timing does not tell names apart
        return None
    return _user(a) if check_password(password, a.password_hash) else None
