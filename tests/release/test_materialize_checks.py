"""materialize refuses what would silently be wrong (issue 24.7, 24.8): partial terms, non-finite merges.

Nothing is written in either case: no output folder, no temporary folder beside it.
"""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import delete, select, update

from registry.db.models import RecipeTerm, Vector, VectorTensor
from registry.errors import IntegrityError
from registry.util.digests import named_digest


def nothing_written(tmp_path) -> bool:
    return not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("cache", ["warm", "cold"])
def test_a_vector_holding_only_lm_head_is_refused(cache, sqlite_reg, models, tmp_path):
    """A vector row that lists one array (as a partial bundle vector once could) must not merge
    as if complete: the merge's tensor list is the base's, and every term must cover it."""
    v = sqlite_reg.import_vector("helpful", "tiny", models["plus"])  # its arrays now vouched for
    with sqlite_reg.Session.begin() as s:
        s.execute(
            delete(VectorTensor).where(VectorTensor.vector_id == v.id, VectorTensor.name != "lm_head.weight")
        )
        kept = s.scalars(select(VectorTensor).where(VectorTensor.vector_id == v.id)).all()
        s.execute(
            update(Vector)
            .where(Vector.id == v.id)
            .values(digest=named_digest({t.name: t.sha256 for t in kept}))
        )
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    if cache == "cold":
        shutil.rmtree(sqlite_reg.home / ".cache")
    with pytest.raises(IntegrityError, match=r"vector helpful@v1: lacks 20 of its base's tensors \(") as e:
        sqlite_reg.materialize("r", tmp_path / "out")
    assert "\n" not in str(e.value)
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("method", ["linear", "ties"])
def test_a_merge_that_overflows_the_output_dtype_writes_nothing(method, sqlite_reg, models, tmp_path, cli):
    """1e8·φ is finite in float32 but not in float16 (max 65504): refused as it streams."""
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    params = {"lambda": 100.0} if method == "ties" else {}
    spec = {"name": "r", "base": "tiny", "method": method, "dtype": "float16", "parameters": params,
            "terms": [{"vector": "helpful", "weight": 1.0e8}]}  # fmt: skip
    sqlite_reg.add_recipe(spec)
    code, out, err = cli("materialize", "r", "--out", tmp_path / "out")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err
    assert (
        "the merge gives values that are not finite in float16 (tensor " in err and "nothing written" in err
    )
    assert nothing_written(tmp_path)
    assert sqlite_reg.materializations() == []


def test_a_weight_beyond_float32_already_in_the_database_is_refused(sqlite_reg, models, tmp_path):
    """η = 1e300 with dtype float32 (a row written before weights were checked): inf, refused."""
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    r, _ = sqlite_reg.add_recipe(
        {"name": "r", "base": "tiny", "dtype": "float32", "terms": [{"vector": "helpful", "weight": 1.0}]}
    )
    with sqlite_reg.Session.begin() as s:
        s.execute(update(RecipeTerm).where(RecipeTerm.recipe_id == r.id).values(weight=1e300))
    with pytest.raises(
        IntegrityError, match=r"recipe r@v1: weight 1e\+300 of helpful@v1 is not finite as float32"
    ):
        sqlite_reg.materialize("r", tmp_path / "out")
    assert nothing_written(tmp_path)
