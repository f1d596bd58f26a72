"""Per-person PostgreSQL logins: without the registry's grants a login is told "permission
denied" and which command prints the grants; with them it reads and writes (issue 34, item 5)."""

from __future__ import annotations

import json
import uuid

import pytest

from registry import Registry
from tests.conftest import PG_ADMIN, PG_SKIP

pytestmark = pytest.mark.skipif(bool(PG_SKIP), reason=PG_SKIP or "")


@pytest.fixture
def shared(home, tmp_path, monkeypatch, models):
    """A registry in a fresh PostgreSQL database, made by the owner login, and a login `role`
    that exists but has been granted nothing."""
    import psycopg

    monkeypatch.delenv("REGISTRY_ACTOR", raising=False)  # the actor is the login itself
    admin = PG_ADMIN.replace("+psycopg", "")
    name, role = f"reg_{uuid.uuid4().hex[:12]}", f"alice_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    owner_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    reg = Registry.init(tmp_path / "owner", db=owner_url)
    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("helpful", "tiny", models["plus"])
    user_url = owner_url.replace("://postgres@", f"://{role}@")
    person = tmp_path / "person"
    person.mkdir()
    (person / "registry.toml").write_text(f'db = "{user_url}"\nstore = "{reg.store.path}"\n')
    yield reg, person, role, admin.rsplit("/", 1)[0] + f"/{name}"
    reg.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_login_without_grants_is_told_permission_denied_and_the_fix(shared, cli):
    _reg, person, role, _ = shared
    for command in (["vector", "list"], ["vector", "show", "helpful"], ["verify"]):
        code, out, err = cli("--home", person, *command)
        assert (code, out) == (1, ""), command
        [line] = err.splitlines()
        assert line.startswith("Error: permission denied in database postgresql+psycopg://"), line
        assert "cannot reach" not in line
        assert f"login {role} lacks the registry's grants" in line
        assert f"`registry db grants {role}`" in line


def test_the_printed_grants_are_enough_to_read_and_write(shared, cli, models):
    import psycopg

    reg, person, role, owner_dsn = shared
    code, out, err = cli("--home", reg.home, "--json", "db", "grants", role)
    assert code == 0, err
    statements = json.loads(out)["statements"]
    assert statements[0].startswith("GRANT CONNECT ON DATABASE") and f'TO "{role}";' in statements[0]
    code, text_out, _ = cli("--home", reg.home, "db", "grants", role)
    assert text_out.splitlines() == statements  # the plain output pipes into psql as it is
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
    code, out, err = cli("--home", person, "--json", "vector", "list")
    assert code == 0, err
    assert [v["ref"] for v in json.loads(out)] == ["helpful@v1"]
    mine = Registry.open(person)
    assert mine.actor == role  # the login, as the audit log will say
    mine.import_vector("harmless", "tiny", models["plus2"])
    mine.close()
    assert [e.actor for e in reg.log("harmless")] == [role]
    code, _, err = cli("--home", person, "verify")
    assert code == 0, err


def test_sqlite_has_no_grants(sqlite_reg, cli):
    code, out, _ = cli("--json", "db", "grants", "alice")
    assert code == 0 and json.loads(out) == {"role": "alice", "statements": []}
