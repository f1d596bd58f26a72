"""The state every verb works on: configuration, database sessions, vector store, actor, audit.

Verbs live in one module per concept (bases, vectors, recipes, …) as functions taking a
`Core`; `Registry` subclasses it and only binds them, so a pipeline can use either.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from registry.config import Config
from registry.db import engine as dbmod
from registry.db.health import check_on_open
from registry.db.models import AuditEvent, Meta
from registry.db.revision import SCHEMA_HEAD
from registry.errors import AlreadyExists, NotInitialized
from registry.storage.file_cache import StatCache
from registry.storage.vector_store import VectorStore

T = TypeVar("T")


def default_actor() -> str:
    try:
        return os.environ.get("REGISTRY_ACTOR") or getpass.getuser()
    except Exception:
        return "unknown"


class Core:
    def __init__(self, config: Config, actor: str | None = None, actor_source: str | None = None):
        self.config = config
        self.home = config.home
        self.actor = actor or default_actor()
        self.actor_source = actor_source  # how the actor was established, e.g. "console"
        self.engine = dbmod.make_engine(config.db_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.store = VectorStore(config.store_url)
        self.id = ""

    @classmethod
    def init(cls, home: str | Path, db: str | None = None, store: str | None = None) -> Self:
        home = Path(home).resolve()
        home.mkdir(parents=True, exist_ok=True)
        if (home / "registry.toml").exists():
            raise AlreadyExists(f"a registry already exists at {home}")
        config = Config(home=home, db=db) if db else Config(home=home)  # a password is split off
        if store:
            config.store = store
        reg = cls(config)
        reg.upgrade(None)  # a fresh database gets the schema; a shared older one is not upgraded
        with reg.Session.begin() as s:
            row = s.get(Meta, "registry_id")
            if row is None:
                reg.id = uuid.uuid4().hex
                s.add(Meta(key="registry_id", value=reg.id))
            else:  # joining a shared database: the store must be the one it uses
                reg.id = row.value
        if reg.store.exists():
            reg.store.check(reg.id)
        else:
            reg.store.create(reg.id)
        config.save()
        reg.audit_now("init", str(home), {"db": config.db, "store": config.store})  # db is redacted
        return reg

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        actor: str | None = None,
        migrate: bool | None = None,
        actor_source: str | None = None,
    ) -> Self:
        """Open a home; `migrate` (default: only SQLite) applies pending schema migrations."""
        home = Path(home or os.environ.get("REGISTRY_HOME") or ".").resolve()
        reg = cls(Config.load(home), actor, actor_source)
        check_on_open(reg.config.db_url)
        reg.upgrade(migrate)
        with reg.Session() as s:
            row = s.get(Meta, "registry_id")
        if row is None:
            raise NotInitialized(
                f"database {reg.engine.url!r} holds no registry: restore it from a backup, "
                "or point `db` in registry.toml at the registry's database"
            )
        reg.id = row.value
        reg.store.check(reg.id)
        return reg

    def upgrade(self, migrate: bool | None = True) -> str:
        """Check the schema; apply pending migrations when `migrate` (None: SQLite only)."""
        try:
            current = dbmod.current_revision(self.engine)
        except Exception as e:
            raise dbmod.DatabaseUnavailable(
                f"cannot reach database {self.engine.url.render_as_string(hide_password=True)}: "
                f"{str(e).splitlines()[0]}"
            ) from None
        allow = self.engine.url.get_backend_name() == "sqlite" if migrate is None else migrate
        dbmod.check_schema(self.engine, SCHEMA_HEAD, current, allow)
        return SCHEMA_HEAD

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, fn: Callable[[], T], attempts: int = 20) -> T:
        """Run a write transaction, retried when another writer holds the lock or won a race."""
        return dbmod.retrying(fn, attempts)

    def audit(self, s: Session, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        s.add(AuditEvent(actor=self.actor, action=action, object=obj, details=details or {}))

    def audit_now(self, action: str, obj: str, details: dict[str, Any] | None = None) -> None:
        with self.Session.begin() as s:
            self.audit(s, action, obj, details)

    def stat_cache(self) -> StatCache:
        return StatCache(self.home / ".cache" / "verified-files.json")

    def scratch(self) -> Path:
        """The registry's own scratch space: the only place it creates and deletes freely."""
        d = self.home / ".scratch"
        d.mkdir(exist_ok=True)
        return Path(os.path.realpath(d))
