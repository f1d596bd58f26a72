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
