"""The database's own record of which registry it holds and which vector store that uses.

A database shared by several homes (PostgreSQL on a server) is one registry: every home must
use the same store. `init` on such a database joins the recorded store; `open` refuses a
registry.toml that names another one.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.config import normalized_store
from registry.db.models import RegistryIdentity


def recorded_store(s: Session, registry_id: str) -> str | None:
    row = s.get(RegistryIdentity, registry_id)
    return row.store if row is not None else None


def record(s: Session, registry_id: str, store_url: str, actor: str) -> None:
    """Remember `store_url` as the registry's store (inside the caller's transaction)."""
    row = s.get(RegistryIdentity, registry_id)
    if row is None:
        row = RegistryIdentity(registry_id=registry_id)
        s.add(row)
    row.store, row.recorded_by = normalized_store(store_url), actor
