"""Numbers as typed (issues 24.8, 24.12, 27.6): float32-finite η, one-line refusals for
`seed: .inf`, and YAML 1.1's `5e-1` read as the 0.5 a person means."""

from __future__ import annotations

import pytest

from registry.errors import InvalidRecipe, RegistryError
from registry.util.numbers import as_number, check_finite32, finite32


def test_numbers_are_read_as_meant():
    assert as_number("5e-1", "weight") == 0.5 and as_number(" -2.5E+3 ", "w") == -2500.0
    for bad in ("nan", "inf", "0x10", "1_000", "five", ""):
        with pytest.raises(ValueError, match=f"w must be a finite number, not {bad!r}"):
            as_number(bad, "w")
    with pytest.raises(ValueError, match="YAML reads true/false/yes/no/on/off as booleans"):
        as_number(True, "w")
    assert finite32(3.0e38) and not finite32(1e39) and not finite32(1e300) and not finite32(float("nan"))
    with pytest.raises(ValueError, match=r"η must be finite as float32 \(\|x\| ≤ 3.4e38\), not 1e\+300"):
        check_finite32(1e300, "η")
    with pytest.raises(ValueError, match="finite as float32"):
        check_finite32(2**1100, "η")  # beyond float64 too


def test_yaml_11_exponent_weight_is_the_number_meant(sqlite_reg, models, tmp_path):
    import yaml

    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    text = "name: r\nbase: tiny\nterms:\n  - vector: helpful\n    weight: 5e-1\n"
    assert yaml.safe_load(text)["terms"][0]["weight"] == "5e-1"  # the trap: a string under YAML 1.1
    path = tmp_path / "r.yaml"
    path.write_text(text)
    r, _ = sqlite_reg.add_recipe(path)
    assert r.terms[0].weight == 0.5
    path.write_text(text.replace("5e-1", "yes"))
    with pytest.raises(
        InvalidRecipe, match=r"terms.0.weight: weight must be a finite number, not True \(YAML reads"
    ):
        sqlite_reg.add_recipe(path)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"seed": float("inf")}, "parameter seed must be finite as float32, not inf"),
        ({"seed": 0.5}, "parameter seed of dare must be a whole number, not 0.5"),
        ({"seed": "7"}, None),
    ],
)
def test_seed_inf_is_one_line(sqlite_reg, models, params, message):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    spec = {"name": "d", "base": "tiny", "method": "dare", "parameters": params,
            "terms": [{"vector": "helpful", "weight": 1.0}]}  # fmt: skip
    if message is None:
        assert sqlite_reg.add_recipe(spec)[0].params["seed"] == 7
        return
    with pytest.raises(InvalidRecipe, match=message):
        sqlite_reg.add_recipe(spec)


def test_sweep_and_tune_refuse_eta_beyond_float32(sqlite_reg, models, cli):
    from registry.evaluation.tune import parse_range, parse_target

    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    code, out, err = cli("sweep", "r", "--vary", "helpful", "--etas", "0,1e300")
    assert (
        code != 0
        and out == ""
        and err.strip() == ("Error: η must be finite numbers (as float32: |η| ≤ 3.4e38), not 1e+300")
    )
    with pytest.raises(RegistryError, match="LO and HI must be finite as float32"):
        parse_range("0:1e39")
    with pytest.raises(RegistryError, match="invalid range '-3e38:3e38'"):
        parse_range("-3e38:3e38")  # the span overflows float32
    with pytest.raises(RegistryError, match="with a finite VALUE"):
        parse_target("verbose_margin=inf")
