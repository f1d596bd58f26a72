"""Recipe numbers finite as float32 (issue 24.8): merges compute in float32, so 1e39 is inf there."""

from __future__ import annotations

import pytest

RECIPE = """name: r
base: tiny
method: {method}
terms:
  - vector: helpful
    weight: {weight}
parameters: {{{params}}}
"""

CASES = {
    "weight 1.0e+39": ("linear", "1.0e+39", "", "terms.0.weight: weight 1e+39 is not finite as float32"),
    "weight -1e39 ": ("linear", "-1.0e+39", "", "weight -1e+39 is not finite as float32"),
    "ties lambda .nan": (
        "ties",
        "1.0",
        "lambda: .nan",
        "parameter lambda must be finite as float32, not nan",
    ),
    "ties density .nan": (
        "ties",
        "1.0",
        "density: .nan",
        "parameter density must be finite as float32, not nan",
    ),
    "dare drop_rate .nan": (
        "dare",
        "1.0",
        "drop_rate: .nan",
        "parameter drop_rate must be finite as float32",
    ),
    "dare seed .inf": ("dare", "1.0", "seed: .inf", "parameter seed must be finite as float32, not inf"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_non_finite_recipe_numbers_are_one_line_at_recipe_add(case, sqlite_reg, models, cli, tmp_path):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    method, weight, params, message = CASES[case]
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(method=method, weight=weight, params=params))
    code, out, err = cli("recipe", "add", path)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert sqlite_reg.recipes() == []


def test_the_largest_float32_weight_is_still_accepted(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    r, _ = sqlite_reg.add_recipe(
        {"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 3.4e38}]}
    )
    assert r.terms[0].weight == 3.4e38
