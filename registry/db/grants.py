"""What a per-person PostgreSQL login needs to use a registry: the statements granting it.

The registry's tables belong to the login that ran `init` and `db upgrade` (the owner); every
other person or CI job gets its own login (the audit log's actor is `session_user`) with
these rights on the registry's schema, including tables later migrations create.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from registry.errors import RegistryError

TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"  # rows only: no DDL, no TRUNCATE
SEQUENCE_RIGHTS = "USAGE, SELECT, UPDATE"  # the id columns' sequences


def quoted(name: str) -> str:
    if not name or "\x00" in name:
        raise RegistryError(f"invalid role name {name!r}")
    return '"' + name.replace('"', '""') + '"'


def grant_statements(engine: Engine, role: str) -> list[str]:
    """GRANT statements giving `role` what the registry's commands need, for the owner to run.

    None for SQLite: a SQLite registry is one file, and who may use it is that file's permissions."""
    if engine.url.get_backend_name() != "postgresql":
        return []
    with engine.connect() as conn:
        database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        owner = conn.execute(
            text("SELECT tableowner FROM pg_tables WHERE schemaname = :s AND tablename = 'alembic_version'"),
            {"s": schema},
        ).scalar()
    if owner is None:
        raise RegistryError(f"database {database} holds no registry schema yet: run `registry init` first")
    r, s, o = quoted(role), quoted(schema), quoted(owner)
    return [
        f"GRANT CONNECT ON DATABASE {quoted(database)} TO {r};",
        f"GRANT USAGE ON SCHEMA {s} TO {r};",
        f"GRANT {TABLE_RIGHTS} ON ALL TABLES IN SCHEMA {s} TO {r};",
        f"GRANT {SEQUENCE_RIGHTS} ON ALL SEQUENCES IN SCHEMA {s} TO {r};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT {TABLE_RIGHTS} ON TABLES TO {r};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT {SEQUENCE_RIGHTS} ON SEQUENCES TO {r};",
    ]


def permission_denied(e: BaseException) -> bool:
    """Whether a database error is the server refusing this login a right (SQLSTATE 42501)."""
    orig = getattr(e, "orig", None) or e
    return getattr(orig, "sqlstate", None) == "42501" or "permission denied" in str(orig).lower()


def denied_message(where: str, login: str | None, said: str) -> str:
    who = login or "LOGIN"
    return (
        f"permission denied in {where}: {said}; login {who} lacks the registry's grants: "
        f"the database owner prints them with `registry db grants {who}` (docs/deployment.md)"
    )
