"""The state every verb works on: configuration, database sessions, vector store, identity, audit.

Verbs live in one module per concept (bases, vectors, recipes, …) as functions taking a
`Core`; `Registry` subclasses it and only binds them, so a pipeline can use either.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from registry.config import Config, redact, same_store, scrub
from registry.db import actor_identity, console_grant, grants, registry_identity
from registry.db import engine as dbmod
from registry.db.health import check_on_open, sqlite_path
from registry.db.models import AuditEvent, Meta
from registry.db.policy import POLICY_IN_DB, TeamPolicy, initial_policy
from registry.db.policy_store import import_legacy, read_policy, seed_new_registry
from registry.db.revision import SCHEMA_HEAD
from registry.errors import (
    AlreadyExists,
    DatabaseAccessDenied,
    GovernanceRefused,
    IdentityRefused,
    NotInitialized,
    RegistryError,
    StoreMismatch,
)
from registry.storage.file_cache import StatCache
from registry.storage.vector_store import VectorStore
from registry.util.extras import require_backends

T = TypeVar("T")


def _refuse_console_claim(source: str | None) -> None:
    """Acting for a console account takes its credential (`open(console=…)`), not a keyword."""
    if source == "console":
        raise IdentityRefused(
            "actor_source 'console' is reserved for the review console, which proves the account "
            "it acts for with that account's token or session (registry serve): act as yourself"
        )


class Core:
    def __init__(self, config: Config, actor: str | None = None, actor_source: str | None = None):
        _refuse_console_claim(actor_source)
        require_backends(config.db_url, config.store_url)  # a missing driver: one line, first
        self.config = config
        self.home = config.home
        self.engine = dbmod.make_engine(config.db_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        self.store = VectorStore(config.store_url)
        self.id = ""
        self.joined = False  # init found the database already holding a registry, and joined it
        # the acting identity is settled once the database answers (open / init)
        self._declared, self._source = actor_identity.declared_actor(actor), actor_source
        self.identity = actor_identity.Identity(
            self._declared or actor_identity.os_user(), "os", actor_identity.os_user()
        )

    @property
    def actor(self) -> str:
        return self.identity.actor

    @actor.setter
    def actor(self, name: str) -> None:  # assigning a name declares it: the policy decides
        self.declare_actor(name)

    def declare_actor(self, name: str, source: str | None = None) -> None:
        """Act as `name` (e.g. `--actor`), if the team policy accepts it (else IdentityRefused)."""
        _refuse_console_claim(source)
        self._declared, self._source = actor_identity.declared_actor(name), source
        self.settle_identity(self.policy())

    def settle_identity(self, policy: TeamPolicy, audit: bool = True) -> None:
        account, how = self._account
        try:
            self.identity = actor_identity.resolve(self._declared, self._source, account, how, policy)
        except IdentityRefused as e:
            self.identity = actor_identity.Identity(account, how, account)
            if audit:  # the attempt is recorded under the authenticated account
                self.audit_now("refused.identity", self._declared or account, {"reason": str(e)})
            raise

    @functools.cached_property
    def _account(self) -> tuple[str, str]:
        return actor_identity.authenticated(self.engine)

    def policy(self) -> TeamPolicy:
        """The team policy as stored now (every governance check reads it afresh)."""
        with self.Session() as s:
            return read_policy(s)

    @classmethod
    def init(
        cls,
        home: str | Path,
        db: str | None = None,
        store: str | None = None,
        actor: str | None = None,
        actor_source: str | None = None,
        policy: dict[str, Any] | None = None,
    ) -> Self:
        """Create a registry; `policy` sets a new registry's team policy (its creator is admin)."""
        home = Path(home).resolve()
        if (home / "registry.toml").exists():
            raise AlreadyExists(f"a registry already exists at {home}")
        config = Config(home=home, db=db) if db else Config(home=home)  # a password is split off
        if store:
            config.store = store
        require_backends(config.db_url, config.store_url)  # before the home folder is made
        reg = cls(config, actor, actor_source)
        if reg.database_is_empty():  # its creator is judged first: a refusal leaves it empty
            reg.settle_identity(initial_policy(policy), audit=False)
        home.mkdir(parents=True, exist_ok=True)
        reg.upgrade(None)  # a fresh database gets the schema; a shared older one is not upgraded
        with reg.Session() as s:
            existing = s.get(Meta, "registry_id")
        # a new registry: its own policy decides who its creator may be; a shared one: the team's
        if existing is None:
            reg.settle_identity(initial_policy(policy), audit=False)
        else:
            reg.settle_identity(reg.policy())
        with reg.Session.begin() as s:
            row = s.get(Meta, "registry_id")
            if row is None:
                reg.id = uuid.uuid4().hex
                s.add(Meta(key="registry_id", value=reg.id))
                registry_identity.record(s, reg.id, config.store_url, reg.actor)
                seed_new_registry(s, reg.actor, policy)
            else:  # a shared database: join its registry and the store it uses
                reg.id, reg.joined = row.value, True
                recorded = registry_identity.recorded_store(s, reg.id)
        if reg.joined:
            reg.join_store(store, recorded)
        elif reg.store.exists():
            reg.store.check(reg.id)
        else:
            reg.store.create(reg.id)
        config.save()
        reg.config.interference = reg.policy().interference
        action = "join" if reg.joined else "init"
        reg.audit_now(action, str(home), {"db": config.db, "store": config.store})  # db is redacted
        return reg

    def database_is_empty(self) -> bool:
        """No registry schema yet (a SQLite file not yet made, a fresh `createdb`); read only.

        False when the database cannot be asked: opening it then says what is wrong."""
        path = sqlite_path(self.config.db_url)
        if path is not None:
            return not path.exists() or path.stat().st_size == 0
        try:
            return dbmod.current_revision(self.engine) is None
        except Exception:
            return False

    def _where(self) -> str:
        return redact(self.engine.url)

    def join_store(self, asked: str | None, recorded: str | None) -> None:
        """Use the store the database records; a join never creates a store of its own."""
        if recorded is None and not asked:
            raise StoreMismatch(
                f"database {self._where()} already holds registry {self.id[:8]} but records no store "
                "for it: pass --store with the store its other homes use"
            )
        if recorded is not None and asked and not same_store(self.config.store_url, recorded):
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
                registry_identity.record(s, self.id, self.config.store_url, self.actor)

        self.write(write)

    def check_store(self) -> None:
        """Refuse a registry.toml whose store is not the one the database records."""
        with self.Session() as s:
            recorded = registry_identity.recorded_store(s, self.id)
        if recorded is not None and not same_store(recorded, self.config.store_url):
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
        console: console_grant.ConsoleGrant | None = None,
    ) -> Self:
        """Open a home; `migrate` (default: only SQLite) applies pending schema migrations.

        `actor` (default: $REGISTRY_ACTOR) is accepted only as the team policy allows.
        `console` (the review console only) acts for the account whose live token or session
        the grant carries; the account is looked up from that credential, never taken as a name.
        """
        home = Path(home or os.environ.get("REGISTRY_HOME") or ".").resolve()
        opened = cls(Config.load(home), actor, actor_source)
        check_on_open(opened.config.db_url)
        opened.upgrade(migrate)
        with opened.Session() as s:
            row = s.get(Meta, "registry_id")
        if row is None:
            raise NotInitialized(
                f"database {redact(opened.engine.url)} holds no registry: restore it from a backup, "
                "or point `db` in registry.toml at the registry's database"
            )
        opened.id = row.value
        opened.check_store()
        if console is not None:  # the account is the credential's, whatever `actor` said
            with opened.Session() as s:
                opened._declared, opened._source = console_grant.account_of(s, console), "console"
        opened.settle_identity(opened.policy())
        opened.adopt_toml_policy()
        opened.config.interference = opened.policy().interference
        return opened

    def adopt_toml_policy(self) -> None:
        """Move a pre-0004 registry.toml's settings into the database: a policy admin's act, once.

        After `db upgrade` of a shared pre-policy database, whoever opens it first must not make
        their own registry.toml (or the defaults) the team policy: only an open by a policy
        admin (migration 0004 makes the account that ran `init` one) adopts. A non-admin's open
        adopts nothing, and is refused in one line while their registry.toml holds old sections.
        """
        legacy, toml = self.config.legacy_policy, self.home / "registry.toml"
        stale = RegistryError(
            f"{toml}: [governance]/[interference] are no longer read; team policy lives in the "
            "database: remove those sections, see `registry policy show`, and ask an admin to "
            "`registry policy set KEY VALUE`"
        )
        with self.Session() as s:
            adopted = s.get(Meta, POLICY_IN_DB) is not None
        if adopted:
            if legacy:
                raise stale
            return
        admins = self.policy().admins
        if self.actor not in admins:
            if legacy:
                message = (
                    f"{toml}: [governance]/[interference] become the team policy only when a policy "
                    f"admin ({', '.join(admins) or 'none set'}) opens this registry, not {self.actor}: "
                    "ask one to, or remove those sections"
                )
                self.audit_now("refused.policy.imported", "registry.toml", {"reason": message})
                raise GovernanceRefused(message)
            return
        with self.Session.begin() as s:
            if not import_legacy(s, legacy, self.actor):
                raise stale  # another admin's open adopted the policy meanwhile
        if legacy:
            self.config.legacy_policy = {}
            self.config.save()  # rewritten without the moved sections
            self.audit_now("policy.imported", "registry.toml", {"settings": legacy})

    def upgrade(self, migrate: bool | None = True) -> str:
        """Check the schema; apply pending migrations when `migrate` (None: SQLite only)."""
        try:
            current = dbmod.current_revision(self.engine)
        except Exception as e:
            said = scrub(str(getattr(e, "orig", None) or e).splitlines()[0], self.engine.url)
            if grants.permission_denied(e):  # the server answered: this login lacks rights
                raise DatabaseAccessDenied(
                    grants.denied_message(
                        f"database {redact(self.engine.url)}", self.engine.url.username, said
                    )
                ) from None
            raise dbmod.DatabaseUnavailable(
                f"cannot reach database {redact(self.engine.url)}: {said}"
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
        who = self.identity  # a declared actor says so, beside the account that declared it
        s.add(
            AuditEvent(
                actor=who.actor,
                actor_source=who.source,
                authenticated_as=who.authenticated_as,
                action=action,
                object=obj,
                details=details or {},
            )
        )

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
