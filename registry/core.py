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
from registry.db import identity
from registry.db.health import check_on_open, sqlite_path
from registry.db.models import AuditEvent, Meta
from registry.db.revision import SCHEMA_HEAD
from registry.errors import AlreadyExists, NotInitialized, StoreMismatch
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
        self.joined = False  # init found the database already holding a registry, and joined it

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
                identity.record(s, reg.id, config.store_url, reg.actor)
            else:  # a shared database: join its registry and the store it uses
                reg.id, reg.joined = row.value, True
                recorded = identity.recorded_store(s, reg.id)
        if reg.joined:
            reg.join_store(store, recorded)
        elif reg.store.exists():
            reg.store.check(reg.id)
        else:
            reg.store.create(reg.id)
        config.save()
        action = "join" if reg.joined else "init"
        reg.audit_now(action, str(home), {"db": config.db, "store": config.store})  # db is redacted
        return reg

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def join_store(self, asked: str | None, recorded: str | None) -> None:
        """Use the store the database records; a join never creates a store of its own."""
        if recorded is None and not asked:
            raise StoreMismatch(
                f"database {self._where()} already holds registry {self.id[:8]} but records no store "
                "for it: pass --store with the store its other homes use"
            )
        if recorded is not None and asked and not identity.same_store(self.config.store_url, recorded):
            raise StoreMismatch(
                f"database {self._where()} already holds registry {self.id[:8]} with store {recorded}, "
                f"not {self.config.store_url}: run init without --store to join it, or use another database"
            )
        if recorded is not None:
            self.config.store = recorded
            self.store = VectorStore(recorded)
        self.store.check(self.id)
        if recorded is None:
            self._record_store()

    def _record_store(self) -> None:
        def write() -> None:
            with self.Session.begin() as s:
                identity.record(s, self.id, self.config.store_url, self.actor)

        self.write(write)

    def check_store(self) -> None:
        """Refuse a registry.toml whose store is not the one the database records."""
        with self.Session() as s:
            recorded = identity.recorded_store(s, self.id)
        if recorded is not None and not identity.same_store(recorded, self.config.store_url):
            if not self._moved_together():
                raise StoreMismatch(
                    f"registry.toml in {self.home} names store {self.config.store_url}, but database "
                    f"{self._where()} records store {recorded} for registry {self.id[:8]}: "
                    f'set store = "{recorded}" in registry.toml'
                )
            recorded = None  # the home was moved with its database and store: record where
        self.store.check(self.id)
        if recorded is None:
            try:
                self._record_store()
            except Exception as e:  # why: a read-only database role may still read the registry
                if type(e).__module__.split(".")[0] != "sqlalchemy":
                    raise

    def _moved_together(self) -> bool:
        """A SQLite file and a relative store, both inside the home: they move with it."""
        db_file = sqlite_path(self.config.db_url)
        inside = db_file is not None and self.home in Path(db_file).resolve().parents
        return inside and "://" not in self.config.store and not Path(self.config.store).is_absolute()

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
        reg.check_store()
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
