"""Database health: the SQLite file checked when a registry opens, and its rows checked by verify.

Opening runs SQLite's `quick_check` (cheap: the file holds metadata only, the arrays
live in the store), so a damaged file is refused with one line instead of half-working.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session

from registry.db.models import Base, Vector, VectorTensor
from registry.errors import DatabaseCorrupted

RESTORE = "restore it from a backup (`registry backup DIR` makes one; see docs/reliability.md)"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory databases)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def sqlite_problems(path: Path, full: bool = False) -> list[str]:
    """SQLite's own check (`integrity_check` when full, else `quick_check`) and foreign keys."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        return [f"cannot open: {e}"]
    try:
        pragma = "integrity_check" if full else "quick_check"
        rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
        problems = [] if rows == ["ok"] else rows
        if full and not problems:
            problems += [
                f"row {rowid} of {table} points at a missing {parent} row"
                for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check")
            ]
        return problems
    except sqlite3.DatabaseError as e:
        return [str(e)]
    finally:
        conn.close()


def check_on_open(url: str) -> None:
    """Refuse a missing, empty or damaged SQLite file with what is wrong and how to repair it."""
    path = sqlite_path(url)
    if path is None:
        return
    start_over = (
        f"to start an empty registry instead, move registry.toml, {path.name} and the store aside "
        "and run `registry init`"
    )
    if not path.exists():
        raise DatabaseCorrupted(f"database file {path} is missing: {RESTORE}; {start_over}")
    if path.stat().st_size == 0:
        raise DatabaseCorrupted(
            f"database file {path} is empty (0 bytes: truncated or replaced): {RESTORE}; {start_over}"
        )
    problems = sqlite_problems(path)
    if problems:
        raise DatabaseCorrupted(f"database file {path} is damaged ({problems[0][:120]}): {RESTORE}", problems)


def database_problems(url: str, engine: Engine) -> list[str]:
    """What `verify` finds wrong in the database itself: file damage, dangling keys, missing tables."""
    path = sqlite_path(url)
    if path is not None:
        problems = sqlite_problems(path, full=True)
        if problems:
            return [f"database {path}: {p}" for p in problems]
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
    missing = sorted(set(Base.metadata.tables) - present)
    if missing:
        return [f"database: table {t} is missing" for t in missing]
    with Session(engine) as s:
        counts = dict(
            s.execute(select(VectorTensor.vector_id, func.count()).group_by(VectorTensor.vector_id)).all()
        )
        rows = s.execute(select(Vector.id, Vector.name, Vector.version)).all()
    return [f"database: vector {n}@v{v} has no tensor rows" for i, n, v in rows if i not in counts]


def database_answers(engine: Engine) -> str | None:
    """None when the database answers a trivial query (a load balancer's health check), else why not."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM alembic_version LIMIT 1"))
    except Exception as e:  # any driver error means "not healthy": the reason, one line
        return (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0][:200]
    return None
