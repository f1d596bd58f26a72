"""A refused `init` leaves the database as it was: no tables, no registry.toml, no store
(issue 34, item 4: a declared actor the default policy refuses used to leave 21 tables)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from registry.db import policy


@pytest.fixture
def default_policy(monkeypatch):
    """The policy a new registry really gets (tests otherwise accept declared actors)."""
    monkeypatch.setitem(policy.NEW_REGISTRY, "allow_declared_actor", False)


def tables(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_refused_init_creates_nothing(default_policy, home, cli, db_url, monkeypatch):
    monkeypatch.setenv("REGISTRY_ACTOR", "somebody-else")
    code, out, err = cli("init", "--db", db_url)
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("Error: actor 'somebody-else' is declared (--actor / REGISTRY_ACTOR)"), line
    assert sorted(p.name for p in home.iterdir()) == []  # no registry.toml, store or database file
    if not db_url.startswith("sqlite"):
        assert tables(db_url) == []
    monkeypatch.delenv("REGISTRY_ACTOR")  # as yourself, the same init works on that database
    code, _, err = cli("init", "--db", db_url)
    assert code == 0, err
    assert "registry_identity" in tables(db_url)
