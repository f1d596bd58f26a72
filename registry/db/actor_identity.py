"""Who is acting: the identity the authenticating system vouches for, not a name typed in.

On PostgreSQL that is the database login (`session_user`): the server checked its
password or certificate. On SQLite it is the operating-system user who can open the file:
the real uid's name in the password database, never `$LOGNAME`/`$USER` (anyone sets those).
A declared name (`--actor`, `REGISTRY_ACTOR`) replaces it only where the team policy says
so (`allow_declared_actor`, or a login listed in `service_accounts`), and every audit row
then records it as declared, beside the authenticated account. A caller that authenticated
the account itself (the review console) passes `actor_source="console"`.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from registry.db.policy import TeamPolicy
from registry.errors import IdentityRefused

SOURCES = ("os", "db-login", "declared", "console")


@dataclass(frozen=True)
class Identity:
    actor: str
    source: str  # one of SOURCES
    authenticated_as: str


def os_user() -> str:
    """The real uid's login name, as the kernel and the password database say.

    Not `getpass.getuser()`: it reads LOGNAME, USER, LNAME and USERNAME first, so
    `LOGNAME=lead registry …` would act, approve and audit as the lead.
    """
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (some containers): the uid itself, still unforgeable
        return f"uid-{uid}"


def authenticated(engine: Engine) -> tuple[str, str]:
    """(account, source): the database login on a server, else the OS user."""
    if engine.url.get_backend_name() == "sqlite":
        return os_user(), "os"
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT session_user")).scalar()), "db-login"


def declared_actor(given: str | None) -> str | None:
    """The name asked for: the argument, else REGISTRY_ACTOR; None when neither is set."""
    name = given if given is not None else os.environ.get("REGISTRY_ACTOR")
    return name.strip() if name and name.strip() else None


def resolve(
    declared: str | None, source: str | None, account: str, account_source: str, policy: TeamPolicy
) -> Identity:
    """The acting identity, or one line saying why a declared name is not accepted."""
    if source is not None and source not in SOURCES:
        raise IdentityRefused(f"actor_source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "console":
        if not declared:
            raise IdentityRefused("actor_source 'console' needs the actor the console authenticated")
        return Identity(declared, "console", account)
    if declared is None or declared == account:
        if source in {"os", "db-login"} and source != account_source:
            raise IdentityRefused(f"this registry authenticates by {account_source}, not {source}")
        return Identity(account, account_source, account)
    if source in {"os", "db-login"}:
        raise IdentityRefused(f"{declared!r} is not the {source} account; you are {account!r}")
    if policy.allow_declared_actor or account in policy.service_accounts:
        return Identity(declared, "declared", account)
    how = "database login" if account_source == "db-login" else "OS user"
    raise IdentityRefused(
        f"actor {declared!r} is declared (--actor / REGISTRY_ACTOR) but you are authenticated as "
        f"{account!r} ({how}); the team policy accepts declared actors only with "
        "allow_declared_actor or from a login in service_accounts (`registry policy show`)"
    )
