"""A database shared by several homes: it records its registry and store; init joins, open checks."""

from __future__ import annotations

import json

import pytest

from registry import Registry
from registry.db import engine as dbmod
from registry.errors import StoreMismatch


def one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1, err
    return lines[0]


def test_second_home_joins_the_store_the_database_records(loaded, cli, db_url, tmp_path, models):
    second = tmp_path / "machine-b"
    code, out, err = cli("--home", second, "--json", "init", "--db", db_url)
    assert code == 0, err
    info = json.loads(out)
    assert info["joined"] is True and info["id"] == loaded.id
    assert info["store"] == str(loaded.store.path)  # the first home's store, not machine-b/vectors.zarr
    assert not (second / "vectors.zarr").exists()
    b = Registry.open(second, migrate=True)
    assert [v.ref for v in b.vectors()] == ["harmless@v1", "helpful@v1"]
    assert b.verify() == []  # every vector's data is found: the same store
    b.import_vector("again", "tiny", models["plus"])
    assert "again@v1" in [v.ref for v in loaded.vectors()]
    b.close()


def test_init_prints_joined_with_the_store(loaded, cli, db_url, tmp_path):
    code, out, err = cli("--home", tmp_path / "b", "init", "--db", db_url)
    assert code == 0, err
    assert out.strip() == f"joined registry {loaded.id[:8]} (store {loaded.store.path}) at {tmp_path / 'b'}"


def test_init_with_another_store_on_a_used_database_is_refused_in_one_line(loaded, cli, db_url, tmp_path):
    code, _, err = cli("--home", tmp_path / "b", "init", "--db", db_url, "--store", tmp_path / "b.zarr")
    assert code == 1
    line = one_line(err)
    assert f"already holds registry {loaded.id[:8]} with store {loaded.store.path}" in line
    assert f"not {tmp_path / 'b.zarr'}" in line and "without --store to join" in line
    assert not (tmp_path / "b" / "registry.toml").exists() and not (tmp_path / "b.zarr").exists()


def test_opening_with_a_store_other_than_the_recorded_one_names_both(loaded, cli, db_url, tmp_path):
    toml = loaded.home / "registry.toml"
    toml.write_text(toml.read_text().replace('store = "vectors.zarr"', f'store = "{tmp_path / "x.zarr"}"'))
    code, _, err = cli("vector", "show", "helpful")
    assert code == 1
    line = one_line(err)
    assert f"names store {tmp_path / 'x.zarr'}" in line
    assert f"records store {loaded.store.path} for registry {loaded.id[:8]}" in line
    with pytest.raises(StoreMismatch):
        Registry.open(loaded.home)


def test_a_sqlite_home_moved_as_a_whole_still_opens(sqlite_reg, tmp_path):
    old = sqlite_reg.home
    sqlite_reg.close()
    new = tmp_path / "moved"
    old.rename(new)
    r = Registry.open(new)
    assert r.base("tiny").name == "tiny" and r.store.path == new / "vectors.zarr"
    r.close()


def test_a_database_from_before_the_identity_table_records_its_store_on_open(loaded, db_url):
    home = loaded.home
    dbmod.downgrade(loaded.engine, "0003")  # the store is kept in registry_meta meanwhile
    dbmod.upgrade(loaded.engine)
    from registry.db.registry_identity import recorded_store

    with loaded.Session() as s:
        assert recorded_store(s, loaded.id) == str(loaded.store.path)
    loaded.close()
    Registry.open(home, migrate=True).close()


@pytest.mark.parametrize(
    "command",
    [
        ["vector", "list"],
        ["base", "list"],
        ["vector", "show", "helpful"],
        ["recipe", "list"],
        ["--json", "vector", "list"],
    ],
)
def test_a_home_pointed_at_another_store_is_refused_by_every_command(loaded, cli, tmp_path, command):
    """Listings answer without the ORM, but read the same facts the open checks: no command
    lists a registry through a registry.toml that names another store (issue 34, item 15)."""
    toml = loaded.home / "registry.toml"
    toml.write_text(toml.read_text().replace('store = "vectors.zarr"', f'store = "{tmp_path / "x.zarr"}"'))
    code, out, err = cli(*command)
    assert code == 1 and out == ""
    line = one_line(err)
    assert f"names store {tmp_path / 'x.zarr'}" in line
    assert f"records store {loaded.store.path} for registry {loaded.id[:8]}" in line


def test_a_store_carrying_another_registrys_id_is_refused_by_listings(loaded, cli, tmp_path):
    root = loaded.store.path / "zarr.json"
    meta = json.loads(root.read_text())
    meta["attributes"]["registry_id"] = "0" * 32
    root.write_text(json.dumps(meta))
    for command in (["vector", "list"], ["base", "list"]):
        code, out, err = cli(*command)
        assert code == 1 and out == ""
        assert f"belongs to another registry ({'0' * 32} != {loaded.id})" in one_line(err)
