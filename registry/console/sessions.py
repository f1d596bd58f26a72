"""Browser sessions and sign-in throttling, kept in the database so every serve process agrees.

The cookie carries a random 256-bit secret; the database keeps its sha256, the account and
an expiry, so any process can verify it and signing out ends it everywhere. The CSRF token of
a session is an HMAC of its secret: each process can recompute it, nothing more is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from registry.console.accounts import User, _user
from registry.db.models import Account, ConsoleSession, SignInFailure, utcnow

if TYPE_CHECKING:
    from registry.core import Core

LIFETIME = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
FREE_FAILURES = 3  # the 4th failed sign-in in a window starts waiting


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def start(core: Core, user: User) -> str:
    """A new session for `user`; returns the cookie secret (the database keeps its hash)."""
    secret = secrets.token_urlsafe(32)

    def write() -> None:
        with core.Session.begin() as s:
            a = s.scalar(select(Account).where(Account.name == user.name))
            now = utcnow()
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(ConsoleSession(secret_hash=_hash(secret), account_id=a.id, expires_at=now + LIFETIME))

    core.write(write)
    return secret


def lookup(core: Core, secret: str | None) -> User | None:
    if not secret or len(secret) > 100:
        return None
    with core.Session() as s:
        row = s.execute(
            select(ConsoleSession, Account)
            .join(Account, Account.id == ConsoleSession.account_id)
            .where(ConsoleSession.secret_hash == _hash(secret))
        ).first()
    if row is None or row[0].expires_at < utcnow():
        return None
    return _user(row[1])


def end(core: Core, secret: str | None) -> None:
    if not secret:
        return

    def write() -> None:
        with core.Session.begin() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.secret_hash == _hash(secret)))

    core.write(write)


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_ok(secret: str | None, given: str | None) -> bool:
    return bool(secret and given) and hmac.compare_digest(csrf_token(secret), given)


# -- slowing down guessing ----------------------------------------------------------------
def recent_failures(core: Core, key: str) -> int:
    with core.Session() as s:
        row = s.get(SignInFailure, key)
    if row is None or utcnow() - row.last_at > FAILURE_WINDOW:
        return 0
    return row.count


def delay_for(failures: int, base: float) -> float:
    """Seconds to wait before answering: nothing for the first few, then doubling up to 30 s."""
    extra = failures - FREE_FAILURES
    return 0.0 if extra < 0 else min(base * 2**extra, 30.0)


def record_failure(core: Core, key: str) -> None:
    def write() -> None:
        with core.Session.begin() as s:
            row = s.get(SignInFailure, key, with_for_update=True)
            now = utcnow()
            if row is None:
                s.add(SignInFailure(key=key, count=1, last_at=now))
            else:
                fresh = now - row.last_at > FAILURE_WINDOW
                row.count, row.last_at = (1 if fresh else row.count + 1), now

    core.write(write)


def clear_failures(core: Core, key: str) -> None:
    def write() -> None:
        with core.Session.begin() as s:
            s.execute(delete(SignInFailure).where(SignInFailure.key == key))

    core.write(write)
