"""Recipes: validation, immutable versions, identical content, aliases."""

from __future__ import annotations

import pytest

from registry.errors import InvalidRecipe
from registry.records.recipes import load_recipe_file


def spec(weight=1.0, vector="helpful", **extra):
    return {
        "name": "r",
        "base": "tiny",
        "method": "linear",
        "terms": [{"vector": vector, "weight": weight}],
        **extra,
    }


def test_identical_content_returns_existing_version(loaded):
    r1, created1 = loaded.add_recipe(spec())
    r2, created2 = loaded.add_recipe(spec())
    r3, created3 = loaded.add_recipe(spec(weight=0.5))
    assert (r1.ref, created1, r2.ref, created2, r3.ref, created3) == (
        "r@v1",
        True,
        "r@v1",
        False,
        "r@v2",
        True,
    )
    assert loaded.recipe("r").ref == "r@v2"
    assert [t.weight for t in loaded.recipe("r@v1").terms] == [1.0]


def test_latest_vector_is_resolved_at_add_time(loaded, models):
    r1, _ = loaded.add_recipe(spec())
    loaded.import_vector("helpful", "tiny", models["plus2"])
    r2, created = loaded.add_recipe(spec())
    assert created and r1.terms[0].vector.ref == "helpful@v1" and r2.terms[0].vector.ref == "helpful@v2"
    assert loaded.recipe("r@v1").terms[0].vector.ref == "helpful@v1"


def test_alias_moves_and_is_audited(loaded):
    loaded.add_recipe(spec())
    loaded.add_recipe(spec(weight=2.0))
    loaded.approve("helpful@v1", "ok", kind="vector")
    loaded.approve("r@v1", "ok")
    loaded.approve("r@v2", "ok")
    loaded.set_alias("r@v1", "prod")
    assert loaded.recipe("r@prod").version == 1
    loaded.set_alias("r@v2", "prod")
    assert loaded.recipe("r@prod").version == 2
    moves = [e.details for e in loaded.log("r@prod") if e.action == "recipe.alias"]
    assert moves == [
        {"to": "r@v1", "from": None, "forced": False},
        {"to": "r@v2", "from": "r@v1", "forced": False},
    ]
    assert all(e.actor == "tester" for e in loaded.log())


def test_yaml_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: r\nbase: tiny\nterms: []\n")
    with pytest.raises(InvalidRecipe) as e:
        load_recipe_file(p)
    assert str(e.value) == "bad.yaml: terms: List should have at least 1 item after validation, not 0"
    p.write_text("- just\n- a list\n")
    with pytest.raises(InvalidRecipe, match="a recipe must be a YAML mapping"):
        load_recipe_file(p)


def test_method_parameters_are_validated(loaded):
    with pytest.raises(InvalidRecipe, match="method linear has no parameter density"):
        loaded.add_recipe(spec(parameters={"density": 0.5}))
    with pytest.raises(InvalidRecipe, match=r"parameter density of ties must be in \[0.0, 1.0\]"):
        loaded.add_recipe({**spec(parameters={"density": 1.5}), "method": "ties"})
