"""What lets a caller act for a console account: the account's own credential, checked here.

The review console authenticates each request (an API token, or a browser-session secret) and
then writes as that account. A name alone (`actor=…, actor_source="console"`) would let any
library caller write as anyone; a grant instead carries the credential the request presented,
and the library looks the account up from it in the database. Whoever can make a grant that
passes already holds that account's token or live session, and could use the REST API anyway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Account, ConsoleSession, utcnow
from registry.errors import IdentityRefused

KINDS = ("token", "session")
MAX_SECRET = 200  # tokens are 47 characters, session secrets 43: anything longer is not one


def secret_hash(secret: str) -> str:
    """How tokens and session secrets are stored (256-bit random secrets: one sha256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleGrant:
    """Proof, for one write, that the console authenticated an account: the credential it was shown."""

    kind: str  # "token" (Authorization: Bearer) or "session" (the browser's session cookie)
    secret: str = field(repr=False)  # never printed, logged or stored


def account_of(s: Session, grant: object) -> str:
    """The account whose live credential `grant` carries; one line when it carries none."""
    if not isinstance(grant, ConsoleGrant) or grant.kind not in KINDS:
        raise IdentityRefused("a console grant is a token or a session secret the console authenticated")
    secret = grant.secret if isinstance(grant.secret, str) else ""
    if secret and len(secret) <= MAX_SECRET:
        digest = secret_hash(secret)
        if grant.kind == "token":
            name = s.scalar(select(Account.name).where(Account.token_hash == digest))
        else:
            name = s.scalar(
                select(Account.name)
                .join(ConsoleSession, ConsoleSession.account_id == Account.id)
                .where(ConsoleSession.secret_hash == digest, ConsoleSession.expires_at >= utcnow())
            )
        if name is not None:
            return name
    raise IdentityRefused(f"console {grant.kind} is unknown, revoked or expired: no account to act for")
