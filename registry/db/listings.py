"""Read-only listings straight through the DB-API, for commands that must answer at once.

Rows are rendered by the same `views` functions as the ORM objects, so both paths agree.

Importing SQLAlchemy's ORM alone takes longer than a listing may; `vector list` and
`base list` therefore read with sqlite3 / psycopg and the same column names the ORM maps.
Anything unusual (another backend, a schema not at head) returns None and the caller
takes the full path, which also applies pending migrations.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from registry.config import Config
from registry.db.as_json import base_view, vector_view
from registry.db.revision import SCHEMA_HEAD

VECTORS = """
SELECT v.name, v.version, b.name, v.status, v.digest, v.param_count, v.norm, v.stored_bytes, v.rank, v.created_at
FROM vectors v JOIN base_models b ON b.id = v.base_id {where}
ORDER BY v.name, v.version
"""
BASES = """
SELECT name, source, revision, revision_sha, path, architecture, dtype, param_count, digest, created_at
FROM base_models ORDER BY name
"""


def _connect(url: str):
    if url.startswith("sqlite:///"):
        return sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True), "?"
    if url.startswith(("postgresql+psycopg://", "postgresql://")):
        import psycopg

        return psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=10
        ), "%s"
    return None, None


def _query(config: Config, sql: str, params: tuple = ()) -> list[tuple] | None:

    try:
        conn, mark = _connect(config.db_url)
    except Exception:
        return None
    if conn is None:
        return None
    try:
        cur = conn.cursor()
        if mark == "?" and cur.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return None  # damaged: the full path says so
        cur.execute("SELECT version_num FROM alembic_version")
        if (cur.fetchone() or [None])[0] != SCHEMA_HEAD:
            return None
        cur.execute(sql.replace("?", mark), params)
        return cur.fetchall()
    except Exception:
        return None
    finally:
        conn.close()


def _datetime(x: Any) -> datetime | None:
    return datetime.fromisoformat(x) if isinstance(x, str) else x


def _objects(rows: list[tuple], keys: str) -> list[SimpleNamespace]:
    """Rows as attribute objects shaped like the ORM's, so `views` renders both paths."""
    out = []
    for r in rows:
        row = SimpleNamespace(**dict(zip(keys.split(), r, strict=True)))
        row.created_at = _datetime(row.created_at)
        if isinstance(getattr(row, "base", None), str):
            row.base = SimpleNamespace(name=row.base)
        out.append(row)
    return out


def vector_rows(config: Config, base: str | None = None) -> list[dict[str, Any]] | None:

    where, params = ("WHERE b.name = ?", (base,)) if base else ("", ())
    rows = _query(config, VECTORS.format(where=where), params)
    keys = "name version base status digest param_count norm stored_bytes rank created_at"
    return None if rows is None else [vector_view(v) for v in _objects(rows, keys)]


def base_rows(config: Config) -> list[dict[str, Any]] | None:

    rows = _query(config, BASES)
    keys = "name source revision revision_sha path architecture dtype param_count digest created_at"
    return None if rows is None else [base_view(b) for b in _objects(rows, keys)]
