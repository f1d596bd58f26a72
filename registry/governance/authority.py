"""Who may do the privileged acts: policy admins, checked in the library so every path agrees.

Accounts, trusted keys, the team policy and `recipe alias --force` belong to the policy's
`admins` whether the call comes from the CLI, a library caller, the console or REST; the
table in docs/security.md lists each command with the authority it needs. Refusals are
audited (`refused.ACTION`) before they are raised, like every governance refusal.
"""

from __future__ import annotations

import pwd
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import select, text

from registry.db.models import AuditEvent
from registry.errors import GovernanceRefused

if TYPE_CHECKING:
    from registry.core import Core


def refuse(core: Core, action: str, obj: str, message: str, details: dict | None = None) -> NoReturn:
    """Record a governance refusal in the audit log (its own transaction), then raise it."""
    core.audit_now(f"refused.{action}", obj, {"reason": message, **(details or {})})
    raise GovernanceRefused(message)


def require_admin(core: Core, action: str, obj: str, what: str) -> None:
    """Refuse (audited as `refused.ACTION`) unless the actor is a policy admin; `what` says the act."""
    admins = core.policy().admins
    if core.actor not in admins:
        refuse(
            core,
            action,
            obj,
            f"only a policy admin ({', '.join(admins) or 'none set'}) may {what}, not {core.actor}",
            {"actor": core.actor},
        )


def login_kind(core: Core, name: str) -> str | None:
    """What login `name` is ("OS login", "database login"), or None when it is none.

    A login is an OS user of this host, a role of the PostgreSQL server, or any account the
    registry has seen authenticate (an OS user or database login of another host).
    """
    try:
        pwd.getpwnam(name)
        return "OS login"
    except KeyError:
        pass
    server = core.engine.url.get_backend_name() == "postgresql"
    with core.Session() as s:
        if server and s.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}):
            return "database login"
        seen = s.scalar(
            select(AuditEvent.actor_source)
            .where(AuditEvent.authenticated_as == name, AuditEvent.actor_source.in_(("os", "db-login")))
            .limit(1)
        )
    return {"os": "OS login", "db-login": "database login"}.get(seen or "")


def check_account_name(core: Core, name: str, action: str) -> None:
    """A console account may not take the name of another person's login.

    Governance names one namespace (four-eyes, `admins`, protected aliases), so an account
    named like a login would act with that login's rights. Only the login itself, acting
    as itself, may give its own name to a console account.
    """
    kind = login_kind(core, name)
    own = core.identity.source in ("os", "db-login") and core.actor == name
    if kind is not None and not own:
        refuse(
            core,
            action,
            f"account:{name}",
            f"{name} names an existing {kind}: a console account cannot take the name of a "
            "login (only that login, acting as itself, may); choose another name",
            {"actor": core.actor},
        )
