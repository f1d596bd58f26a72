"""Alembic migrations: the head constant, upgrades with data present, downgrade and back."""

from __future__ import annotations

from registry.db import engine as dbmod
from registry.db.revision import SCHEMA_HEAD


def test_schema_head_constant_matches_alembic(reg):
    assert dbmod.head_revision(reg.engine) == SCHEMA_HEAD
    assert dbmod.current_revision(reg.engine) == SCHEMA_HEAD


def test_upgrade_from_first_revision_keeps_data(home, db_url, models, tmp_path):
    from registry import Registry

    reg = Registry.init(home, db=db_url)
    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    first = reg.materialize("r", tmp_path / "a")
    dbmod.downgrade(reg.engine, "0001")
    assert dbmod.current_revision(reg.engine) == "0001"
    reg.close()
    # opening applies the pending migration; everything written before is still there
    # SQLite upgrades on open; a shared server database only by an explicit upgrade
    again = Registry.open(home, migrate=None if db_url.startswith("sqlite") else True)
    assert dbmod.current_revision(again.engine) == SCHEMA_HEAD
    assert [v.ref for v in again.vectors()] == ["helpful@v1"]
    assert again.recipe("r").status == "draft" and again.recipe("r").status_reason is None
    assert again.materializations()[0].output_digest == first.output_digest
    again.approve("helpful", "after upgrade", kind="vector")
    again.approve("r", "after upgrade")
    assert again.materialize("r", tmp_path / "b", reuse=False).output_digest == first.output_digest
    dbmod.downgrade(again.engine, "0001")
    dbmod.upgrade(again.engine)
    assert dbmod.current_revision(again.engine) == SCHEMA_HEAD
    assert again.vector("helpful").digest == first.recipe.terms[0].vector.digest
    again.close()


def test_low_rank_downgrade_refuses_while_factor_vectors_exist(sqlite_reg):
    """0007 adds vectors.rank and vector_tensors.factors; earlier versions cannot read a
    low-rank vector, so the downgrade refuses (nothing dropped) until none is left."""
    import pytest

    from registry.testing.factors import random_factors

    base = sqlite_reg.base("tiny").path
    v = sqlite_reg.import_low_rank("low", "tiny", random_factors(base, rank=2))
    with pytest.raises(RuntimeError, match="1 vector\\(s\\) are stored in low-rank form"):
        dbmod.downgrade(sqlite_reg.engine, "0003")
    assert dbmod.current_revision(sqlite_reg.engine) == SCHEMA_HEAD
    assert sqlite_reg.vector("low").rank == 2 == v.rank
    assert {t.factors["rank"] for t in sqlite_reg.vector("low").tensors if t.factors} == {2}


def test_portable_bases_downgrade_keeps_locations_and_commits(home, db_url, models, tmp_path, monkeypatch):
    """0006 adds base_locations and base_models.revision_sha; its downgrade drops neither."""
    import sqlalchemy as sa

    from registry import Registry

    monkeypatch.setenv("REGISTRY_HOST_ID", "host-a")
    reg = Registry.init(home, db=db_url)
    reg.add_base("tiny", str(models["base"]))
    with reg.Session.begin() as s:
        s.execute(sa.text("UPDATE base_models SET revision_sha = :sha"), {"sha": "a" * 40})
    reg.locate_base("tiny", models["base"])
    dbmod.downgrade(reg.engine, "0003")
    assert dbmod.current_revision(reg.engine) == "0003"
    with reg.engine.connect() as c:
        assert c.execute(sa.text("SELECT host, path FROM base_locations")).all() == [
            ("host-a", str(models["base"]))
        ]
        assert c.execute(sa.text("SELECT revision_sha FROM base_models")).scalar() == "a" * 40
    dbmod.upgrade(reg.engine)
    assert dbmod.current_revision(reg.engine) == SCHEMA_HEAD
    assert reg.base_locations("tiny") == {"host-a": str(models["base"])}
    assert reg.base("tiny").revision_sha == "a" * 40
    reg.close()
