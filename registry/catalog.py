"""Read-only listings straight through the DB-API, for commands that must answer at once.

Importing SQLAlchemy's ORM alone takes longer than a listing may; `vector list` and
`base list` therefore read with sqlite3 / psycopg and the same column names the ORM maps.
Anything unusual (another backend, a schema not at head) returns None and the caller
takes the full path, which also applies pending migrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from registry.config import Config

VECTORS = """
SELECT v.name, v.version, b.name, v.status, v.digest, v.param_count, v.norm, v.stored_bytes, v.created_at
FROM vectors v JOIN base_models b ON b.id = v.base_id {where}
ORDER BY v.name, v.version
"""
BASES = """
SELECT name, source, revision, path, architecture, dtype, param_count, digest, created_at
FROM base_models ORDER BY name
"""


def _connect(url: str):
    if url.startswith("sqlite:///"):
        import sqlite3

        return sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True), "?"
    if url.startswith(("postgresql+psycopg://", "postgresql://")):
        import psycopg

        return psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=10
        ), "%s"
    return None, None


def _query(config: Config, sql: str, params: tuple = ()) -> list[tuple] | None:
    from registry.schema import SCHEMA_HEAD

    try:
        conn, mark = _connect(config.db_url)
    except Exception:
        return None
    if conn is None:
        return None
    try:
        cur = conn.cursor()
        cur.execute("SELECT version_num FROM alembic_version")
        if (cur.fetchone() or [None])[0] != SCHEMA_HEAD:
            return None
        cur.execute(sql.replace("?", mark), params)
        return cur.fetchall()
    except Exception:
        return None
    finally:
        conn.close()


def _time(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, str):
        x = datetime.fromisoformat(x)
    return x.isoformat(timespec="seconds") + "Z"


def vector_rows(config: Config, base: str | None = None) -> list[dict[str, Any]] | None:
    where, params = ("WHERE b.name = ?", (base,)) if base else ("", ())
    rows = _query(config, VECTORS.format(where=where), params)
    if rows is None:
        return None
    out = []
    for name, version, base_name, status, digest, count, norm, stored, created in rows:
        out.append(
            {
                "ref": f"{name}@v{version}",
                "name": name,
                "version": version,
                "base": base_name,
                "status": status,
                "digest": digest,
                "param_count": count,
                "norm": norm,
                "stored_bytes": stored,
                "bytes_per_param": stored / max(count, 1),
                "created_at": _time(created),
            }
        )
    return out


def base_rows(config: Config) -> list[dict[str, Any]] | None:
    rows = _query(config, BASES)
    if rows is None:
        return None
    keys = (
        "name",
        "source",
        "revision",
        "path",
        "architecture",
        "dtype",
        "param_count",
        "digest",
        "created_at",
    )
    return [{**dict(zip(keys, r, strict=True)), "created_at": _time(r[-1])} for r in rows]
