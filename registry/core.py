"""The state every verb works on: configuration, database sessions, vector store, actor, audit.

Verbs live in one module per concept (bases, vectors, recipes, …) as functions taking a
`Core`; `Registry` subclasses it and only binds them, so a pipeline can use either.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from registry import db as dbmod
from registry.config import Config
from registry.models import AuditEvent
from registry.store import VectorStore

T = TypeVar("T")


def default_actor() -> str:
    try:
        return os.environ.get("REGISTRY_ACTOR") or getpass.getuser()
    except Exception:
        return "unknown"


class Core:
    def __init__(self, config: Config, actor: str | None = None):
        self.config = config
        self.home = config.home
        self.actor = actor or default_actor()
        self.engine = dbmod.make_engine(config.db_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.store = VectorStore(config.store_url)
        self.id = ""

    def write(self, fn: Callable[[], T], attempts: int = 20) -> T:
        """Run a write transaction, retried when another writer holds the lock or won a race."""
        return dbmod.retrying(fn, attempts)

    def audit(self, s: Session, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        s.add(AuditEvent(actor=self.actor, action=action, object=obj, details=details or {}))

    def audit_now(self, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        with self.Session.begin() as s:
            self.audit(s, action, obj, details)

    def stat_cache(self):
        from registry.bases import StatCache

        return StatCache(self.home / ".cache" / "verified-files.json")

    def scratch(self) -> Path:
        """The registry's own scratch space: the only place it creates and deletes freely."""
        d = self.home / ".scratch"
        d.mkdir(exist_ok=True)
        return Path(os.path.realpath(d))
