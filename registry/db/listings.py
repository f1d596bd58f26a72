"""Read-only lists and show views straight through the DB-API, for commands that must answer at once.

Importing SQLAlchemy and mapping the models takes longer than a `list` or `show` may, so
those commands read with sqlite3 / psycopg. Rows come back as attribute objects shaped like
the ORM's (every column of the table, JSON and times decoded, the relationships the views
follow attached), and the same `as_json` views render both paths, so they agree
(tests/cli/test_fast_reads.py compares them command by command). Anything unusual (another
backend, a damaged file, a schema not at head, a name that is not found, a base that only
the Hub cache holds) returns None and the caller takes the full path, which also applies
pending migrations and words every error.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from registry.config import Config, same_store
from registry.db.as_json import NOTE_ACTIONS, base_view, vector_view
from registry.db.policy import POLICY_IN_DB, TeamPolicy, policy_from_rows
from registry.db.revision import SCHEMA_HEAD
from registry.storage.array_meta import META_LIMIT
from registry.util import bounded_json
from registry.util.host_id import host_id
from registry.util.refs import Ref

T = TypeVar("T")
Row = SimpleNamespace


class Reader:
    """One read-only connection: whole rows of a table as objects, decoded as the ORM decodes them."""

    def __init__(self, conn: Any, sqlite: bool):
        self.conn, self.sqlite = conn, sqlite
        self._decode: dict[str, dict[str, Callable[[Any], Any]]] = {}

    def execute(self, sql: str, params: tuple = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql if self.sqlite else sql.replace("?", "%s"), params)
        return cur

    def decoders(self, table: str) -> dict[str, Callable[[Any], Any]]:
        """SQLite keeps JSON and times as text and booleans as integers (psycopg decodes them)."""
        if not self.sqlite:
            return {}
        if table not in self._decode:
            kinds = {"JSON": _json, "DATETIME": _datetime, "BOOLEAN": _bool}
            info = self.execute(f"PRAGMA table_info({table})").fetchall()
            self._decode[table] = {c[1]: kinds[c[2]] for c in info if c[2] in kinds}
        return self._decode[table]

    def rows(self, table: str, where: str = "", params: tuple = (), order: str = "id") -> list[Row]:
        cur = self.execute(
            f"SELECT * FROM {table}{f' WHERE {where}' if where else ''} ORDER BY {order}", params
        )
        names = [d[0] for d in cur.description]
        decode = self.decoders(table)
        out = []
        for r in cur.fetchall():
            row = Row(**dict(zip(names, r, strict=True)))
            for column, fn in decode.items():
                setattr(row, column, fn(getattr(row, column)))
            out.append(row)
        return out

    def by_id(self, table: str, ids: set[int]) -> dict[int, Row]:
        return {r.id: r for r in self.rows(table, *_among("id", ids))} if ids else {}


def _among(column: str, values: set[Any]) -> tuple[str, tuple]:
    """`column IN (?, …)` and its parameters."""
    return f"{column} IN ({', '.join('?' * len(values))})", tuple(sorted(values))


def _json(x: Any) -> Any:
    return json.loads(x) if isinstance(x, str) else x


def _datetime(x: Any) -> datetime | None:
    return datetime.fromisoformat(x) if isinstance(x, str) else x


def _bool(x: Any) -> Any:
    return bool(x) if isinstance(x, int) else x


def _connect(url: str) -> Reader | None:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return Reader(sqlite3.connect(f"file:{path}?mode=ro", uri=True), sqlite=True)
    if url.startswith(("postgresql+psycopg://", "postgresql://")):
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=10)
        conn.read_only, conn.isolation_level = True, psycopg.IsolationLevel.REPEATABLE_READ
        return Reader(conn, sqlite=False)
    return None


def read(config: Config, fn: Callable[[Reader], T | None]) -> T | None:
    """fn's answer from a healthy database at schema head; None (take the full path) otherwise."""
    if config.legacy_policy:
        return None  # a registry.toml from before team policy: the full open adopts or refuses it
    try:
        db = _connect(config.db_url)
    except Exception:
        return None
    if db is None:
        return None
    try:  # one read-only transaction: every query of a command sees the same snapshot
        if db.sqlite:
            db.execute("BEGIN")
        if db.sqlite and db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return None  # damaged: the full path says so
        if (db.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] != SCHEMA_HEAD:
            return None
        if db.execute("SELECT 1 FROM registry_meta WHERE key = ?", (POLICY_IN_DB,)).fetchone() is None:
            return None  # a pre-policy database: the full open adopts it (or refuses a non-admin)
        if not _store_is_recorded(db, config):
            return None  # the full path refuses it, or records where a moved home's store is
        return fn(db)
    except Exception:
        return None
    finally:
        db.conn.close()


def _store_is_recorded(db: Reader, config: Config) -> bool:
    """registry.toml names the store the database records; a local one holds this registry."""
    row = db.execute(
        "SELECT m.value, i.store FROM registry_meta m JOIN registry_identity i ON i.registry_id = m.value "
        "WHERE m.key = 'registry_id'"
    ).fetchone()
    if row is None or row[1] is None or not same_store(row[1], config.store_url):
        return False
    if "://" in config.store_url:
        return True  # an object store: checked by every command that reads or writes its data
    try:
        found = bounded_json.loads((Path(config.store_url) / "zarr.json").read_bytes()[: META_LIMIT + 1])
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and found.get("attributes", {}).get("registry_id") == row[0]


def _with_refs(rows: list[Row]) -> list[Row]:
    for r in rows:
        r.ref = f"{r.name}@v{r.version}"
    return rows


# -- bases ----------------------------------------------------------------------------------
def _here(db: Reader, b: Row, host: str) -> Row | None:
    """As records.bases.here: this host's folder, else the recorded one (None: only the Hub cache)."""
    b.recorded_path = b.path
    found = db.execute(
        "SELECT path FROM base_locations WHERE base_id = ? AND host = ?", (b.id, host)
    ).fetchone()
    if found is None and not Path(b.path).is_dir():
        return None
    if found is not None:
        b.path = found[0]
    return b


def base_rows(config: Config) -> list[dict[str, Any]] | None:
    def fn(db: Reader) -> list[dict[str, Any]] | None:
        host = host_id(config.home)
        bases = [_here(db, b, host) for b in db.rows("base_models", order="name")]
        return None if None in bases else [base_view(b) for b in bases]

    return read(config, fn)


def base(config: Config, name: str) -> Row | None:
    """The base with its files, `path` on this host, `recorded_path` and every host's `locations`."""

    def fn(db: Reader) -> Row | None:
        found = db.rows("base_models", "name = ?", (name,))
        if len(found) != 1 or _here(db, found[0], host_id(config.home)) is None:
            return None
        b = found[0]
        b.files = db.rows("base_files", "base_id = ?", (b.id,), order="filename")
        rows = db.execute("SELECT host, path FROM base_locations WHERE base_id = ?", (b.id,)).fetchall()
        b.locations = dict(sorted((h, p) for h, p in rows))
        return b

    return read(config, fn)


# -- vectors --------------------------------------------------------------------------------
def _vectors(db: Reader, where: str = "", params: tuple = (), order: str = "name, version") -> list[Row]:
    """Vector rows with `ref`, `base` and `run` attached."""
    vectors = _with_refs(db.rows("vectors", where, params, order))
    bases = db.by_id("base_models", {v.base_id for v in vectors})
    runs = db.by_id("training_runs", {v.run_id for v in vectors if v.run_id is not None})
    tags = _tags(db, "vector_tags", "vector_id", {v.id for v in vectors})
    for v in vectors:
        v.base, v.run, v.tags = bases[v.base_id], runs.get(v.run_id), tags.get(v.id, {})
    return vectors


def _tags(db: Reader, table: str, owner: str, ids: set[int]) -> dict[int, dict[str, str]]:
    """{owner id: {key: value}} of vector_tags / recipe_tags (as the ORM's `tags`)."""
    out: dict[int, dict[str, str]] = {}
    if ids:
        for t in db.rows(table, *_among(owner, ids), order="key"):
            out.setdefault(getattr(t, owner), {})[t.key] = t.value
    return out


def vector_rows(config: Config, base: str | None = None) -> list[dict[str, Any]] | None:
    def fn(db: Reader) -> list[dict[str, Any]]:
        live = "archived_at IS NULL"  # archived versions only on request (the full path's Filter)
        if base:
            where = f"{live} AND base_id IN (SELECT id FROM base_models WHERE name = ?)"
            return [vector_view(v) for v in _vectors(db, where, (base,))]
        return [vector_view(v) for v in _vectors(db, live)]

    return read(config, fn)


def vector(config: Config, ref: str, base: str | None = None) -> Row | None:
    """As records.vectors.get_vector, with its tensors; None where that one would raise."""

    def fn(db: Reader) -> Row | None:
        r = Ref.parse(ref, "vector reference")
        if r.alias:
            return None
        where, params = ["name = ?"], [r.name]
        if base:
            where.append("base_id IN (SELECT id FROM base_models WHERE name = ?)")
            params.append(base)
        if r.version is not None:
            where.append("version = ?")
            params.append(r.version)
        else:  # NAME means the newest version that is neither deprecated nor archived
            where.append("status != 'deprecated' AND archived_at IS NULL")
        rows = _vectors(db, " AND ".join(where), tuple(params), order="version DESC")
        if not rows or len({v.base_id for v in rows}) > 1:
            return None
        v = rows[0]
        v.tensors = db.rows("vector_tensors", "vector_id = ?", (v.id,), order="name")
        return v

    return read(config, fn)


# -- recipes --------------------------------------------------------------------------------
def _recipes(db: Reader, where: str = "", params: tuple = (), order: str = "name, version") -> list[Row]:
    """Recipe rows with `ref`, `base` and `terms` (each with its `vector`, that with its `base`)."""
    recipes = _with_refs(db.rows("recipes", where, params, order))
    where, params = _among("recipe_id", {r.id for r in recipes})
    terms = db.rows("recipe_terms", where, params, order="recipe_id, position") if recipes else []
    where, params = _among("id", {t.vector_id for t in terms})
    vectors = {v.id: v for v in _vectors(db, where, params)} if terms else {}
    bases = db.by_id("base_models", {r.base_id for r in recipes})
    tags = _tags(db, "recipe_tags", "recipe_id", {r.id for r in recipes})
    for r in recipes:
        r.base, r.tags = bases[r.base_id], tags.get(r.id, {})
        r.terms = [t for t in terms if t.recipe_id == r.id]
    for t in terms:
        t.vector = vectors[t.vector_id]
    return recipes


def recipes(config: Config) -> tuple[list[Row], list[Row]] | None:
    """Every live recipe version and every alias, as `recipe list` shows them (no filter)."""
    return read(
        config,
        lambda db: (
            _recipes(db, "archived_at IS NULL"),
            db.rows("recipe_aliases", order="recipe_name, alias"),
        ),
    )


def recipe(config: Config, ref: str) -> tuple[Row, list[Row], dict[str, Any]] | None:
    """As records.recipes.get_recipe, with its name's aliases and its recorded notes."""

    def fn(db: Reader) -> tuple[Row, list[Row], dict[str, Any]] | None:
        r = Ref.parse(ref, "recipe reference")
        where, params = "name = ?", (r.name,)
        if r.alias:
            where, params = (
                "name = ? AND id = (SELECT recipe_id FROM recipe_aliases WHERE recipe_name = ? AND alias = ?)",
                (r.name, r.name, r.alias),
            )
        elif r.version is not None:
            where, params = "name = ? AND version = ?", (r.name, r.version)
        else:  # a bare NAME never means an archived version
            where = "name = ? AND archived_at IS NULL"
        found = _recipes(db, where, params, order="version DESC")
        if not found:
            return None
        aliases = db.rows("recipe_aliases", "recipe_name = ?", (found[0].name,), order="alias")
        marks = ", ".join("?" * len(NOTE_ACTIONS))
        events = db.rows("audit_events", f"object = ? AND action IN ({marks})", (found[0].ref, *NOTE_ACTIONS))
        return found[0], aliases, {NOTE_ACTIONS[e.action]: dict(e.details) for e in events}

    return read(config, fn)


# -- audit, accounts, trust ------------------------------------------------------------------
def events(config: Config, obj: str | None = None, limit: int | None = None) -> list[Row] | None:
    """As governance.lifecycle.audit_log: oldest first; `obj` exact, or NAME@… for a bare NAME."""

    def fn(db: Reader) -> list[Row]:
        where, params = "", ()
        if obj:
            escaped = obj.replace("/", "//").replace("%", "/%").replace("_", "/_")
            where, params = "object = ? OR object LIKE ? ESCAPE '/'", (obj, f"{escaped}@%")
        rows = db.rows("audit_events", where, params)
        return rows[-limit:] if limit else rows

    return read(config, fn)


def users(config: Config) -> list[Row] | None:
    def fn(db: Reader) -> list[Row]:
        rows = db.rows("accounts", order="name")
        for a in rows:
            a.has_password = a.password_hash is not None
        return rows

    return read(config, fn)


def trusted(config: Config) -> tuple[list[Row], list[Row]] | None:
    """Trusted keys by when they were added, revoked ones by when they were revoked."""
    return read(
        config,
        lambda db: (db.rows("trusted_keys", order="added_at"), db.rows("revoked_keys", order="revoked_at")),
    )


def policy(config: Config) -> TeamPolicy | None:
    """The team policy as stored now (as db.policy_store.read_policy)."""
    return read(
        config, lambda db: policy_from_rows({r.key: r.value for r in db.rows("team_policy", order="key")})
    )
