"""Backups: a consistent copy of a SQLite registry (database, then store) that opens as a registry.

The database is copied first with SQLite's online backup API (safe while others write),
then the store: committed arrays are never rewritten, so every row in the copy finds its
data. PostgreSQL databases and remote stores are backed up with their own tools.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.db.health import sqlite_path
from registry.errors import OutputExists, RegistryError

if TYPE_CHECKING:
    from registry.core import Core

POSTGRES_WAY = "back it up with `pg_dump --format=custom DBURL > registry.dump` (restore: `pg_restore`)"


def backup(core: Core, dest: str | Path) -> dict[str, Any]:
    """Write DEST/registry.db, DEST/vectors.zarr and DEST/registry.toml; DEST opens as a registry."""
    dest = Path(dest).resolve()
    src = sqlite_path(core.config.db_url)
    if src is None:
        raise RegistryError(
            f"the database is not a SQLite file: {POSTGRES_WAY}, and copy the store {core.config.store_url}"
        )
    if core.store.remote:
        raise RegistryError(f"the store {core.store.url} is remote: copy it with your storage's own tools")
    if dest.exists() and any(dest.iterdir()):
        raise OutputExists(f"{dest} exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        target = sqlite3.connect(dest / "registry.db")
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        shutil.copytree(core.config.store_url, dest / "vectors.zarr")
        replace(core.config, home=dest, db="sqlite:///registry.db", store="vectors.zarr").save()
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    core.audit_now("backup", str(dest), {})
    return {
        "dest": str(dest),
        "db": str(dest / "registry.db"),
        "store": str(dest / "vectors.zarr"),
        "bytes": sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()),
    }
