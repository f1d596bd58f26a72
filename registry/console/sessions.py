"""Browser sessions and sign-in throttling, kept in the database so every serve process agrees.

The cookie carries a random 256-bit secret; the database keeps its sha256, the account and
an expiry, so any process can verify it and signing out ends it everywhere. The CSRF token of
a session is an HMAC of its secret: each process can recompute it, nothing more is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from registry.console.accounts import User, _user
from registry.db.console_grant import secret_hash
from registry.db.models import Account, ConsoleSession, SignInFailure, utcnow

if TYPE_CHECKING:
    from registry.core import Core

LIFETIME = timedelta(hours=12)
FAILURE_WINDOW = timedelta(minutes=15)
FREE_FAILURES = 3  # the 4th sign-in attempt in a window starts waiting
MAX_WAIT_STEPS = 30  # the longest wait is 30 × the first one; a longer queue is refused (429)


def _hash(secret: str) -> str:
    return secret_hash(secret)  # as the library checks a session grant


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
class Throttled(Exception):
    """Too many sign-in attempts are queued for this address or name: refuse without checking."""

    def __init__(self, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"too many sign-in attempts: try again in {math.ceil(retry_after)} s")


def max_wait(base: float) -> float:
    """The longest wait before an answer (30 s at the default base of 1 s)."""
    return MAX_WAIT_STEPS * base


def delay_for(failures: int, base: float) -> float:
    """Seconds between this attempt's check and the previous one's: nothing for the first few,
    then doubling up to `max_wait(base)`."""
    extra = failures - FREE_FAILURES
    return 0.0 if extra < 0 else min(base * 2 ** min(extra, 64), max_wait(base))


def reserve(core: Core, keys: list[str], base: float) -> float:
    """Count a sign-in attempt against every key *before* it waits, and give it the next slot.

    Each key keeps how many attempts it has had in the window (`count`) and when the newest
    of them may be checked (`last_at`); this attempt may be checked `delay_for(count)` after
    that, or after now if later. So attempts sent in parallel queue one after another, as a
    sequential guesser's would, instead of all reading the same count and answering at once.
    Returns the seconds to wait before checking; raises Throttled, counting nothing, when
    that is longer than the longest wait (the queue is full).
    """

    def write() -> float:
        with core.Session.begin() as s:
            # a write first: SQLite takes its write lock now (later writers wait for it instead
            # of failing on a stale read); PostgreSQL locks the rows that exist
            s.execute(
                update(SignInFailure)
                .where(SignInFailure.key.in_(keys))
                .values(count=SignInFailure.count)
                .execution_options(synchronize_session=False)
            )
            now = utcnow()
            rows: dict[str, SignInFailure | None] = {}
            at = now
            for key in sorted(set(keys)):  # one lock order for every process
                row = s.get(SignInFailure, key, with_for_update=True)
                if row is not None and now - row.last_at > FAILURE_WINDOW:
                    row.count = 0  # a quiet window starts afresh
                rows[key] = row
                if row is not None and row.count:
                    slot = max(now, row.last_at) + timedelta(seconds=delay_for(row.count, base))
                    at = max(at, slot)
            wait = (at - now).total_seconds()
            if wait > max_wait(base):  # the rollback also undoes the reset above
                raise Throttled(wait - max_wait(base))
            for key, row in rows.items():
                if row is None:
                    s.add(SignInFailure(key=key, count=1, last_at=at))
                else:
                    row.count, row.last_at = row.count + 1, at
            return wait

    return core.write(write)


def clear_failures(core: Core, key: str) -> None:
    def write() -> None:
        with core.Session.begin() as s:
            s.execute(delete(SignInFailure).where(SignInFailure.key == key))

    core.write(write)
