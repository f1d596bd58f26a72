"""Opening the database: engine settings per backend, schema skew checks, migrations."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from registry.config import redact, scrub
from registry.errors import DatabaseUnavailable, SchemaMismatch

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # why: FKs are off by default; WAL lets readers run beside a writer
            cur = conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(engine: Engine):
    from alembic.config import Config

    import registry_migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(registry_migrations.__file__).parent))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), revision)
    except OperationalError as e:
        said = scrub(str(e.orig).splitlines()[0] if str(e.orig) else type(e.orig).__name__, engine.url)
        raise DatabaseUnavailable(f"cannot reach database {redact(engine.url)}: {said}") from None


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            conn.rollback()
            if "alembic_version" in inspect(conn).get_table_names():
                raise
            return None


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def check_schema(engine: Engine, head: str, current: str | None, allow_upgrade: bool) -> None:
    """Refuse a database newer than this package; upgrade an older one only when allowed.

    SQLite databases belong to one home and are upgraded on open; a shared server database
    is upgraded only by `registry db upgrade`, so one newer client cannot silently lock out
    every older one.
    """
    if current == head:
        return
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory.from_config(_alembic_config(engine)).walk_revisions()}
    where = redact(engine.url)
    if current is not None and current not in known:
        raise SchemaMismatch(
            f"database {where} has schema {current}, newer than this registry package knows "
            f"(head {head}); upgrade this client's registry package (the team's newer checkout or wheel)"
        )
    if not allow_upgrade and current is not None:
        raise SchemaMismatch(
            f"database {where} has schema {current}, older than this package's {head}; "
            "run `registry db upgrade` once all its clients are updated"
        )
    upgrade(engine)


def retrying(fn: Callable[[], T], attempts: int = 20) -> T:
    """Run a write transaction, retrying when another writer holds the lock or won a race."""
    from sqlalchemy.exc import IntegrityError as SAIntegrityError

    for i in range(attempts):
        try:
            return fn()
        except (OperationalError, SAIntegrityError) as e:
            transient = "locked" in str(e).lower() or isinstance(e, SAIntegrityError)
            if not transient or i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))
    raise AssertionError("unreachable")
