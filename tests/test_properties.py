"""Property-based tests (hypothesis) of recipe parsing and reference resolution."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import InvalidName, InvalidRecipe
from registry.records.recipes import parse_recipe
from registry.util.refs import Ref

names = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=40).filter(
    lambda s: s[0].isalnum() and ".." not in s
)
versions = st.integers(min_value=1, max_value=10**6)
aliases = names.filter(lambda s: not (s[0] == "v" and s[1:].isdigit()))


@given(names)
def test_plain_name_round_trips(name):
    ref = Ref.parse(name)
    assert (ref.name, ref.version, ref.alias) == (name, None, None) and str(ref) == name


@given(names, versions)
def test_versioned_reference_round_trips(name, version):
    ref = Ref.parse(f"{name}@v{version}")
    assert (ref.name, ref.version, ref.alias) == (name, version, None) and str(ref) == f"{name}@v{version}"


@given(names, aliases)
def test_alias_reference_round_trips(name, alias):
    ref = Ref.parse(f"{name}@{alias}")
    assert (ref.name, ref.alias, ref.version) == (name, alias, None)


@given(st.text(max_size=30))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        ref = Ref.parse(text)
    except InvalidName as e:
        assert "\n" not in str(e)
        return
    assert "/" not in ref.name and ".." not in ref.name and all(c.isprintable() for c in ref.name)


term = st.fixed_dictionaries(
    {
        "vector": st.one_of(names, st.builds(lambda n, v: f"{n}@v{v}", names, versions)),
        "weight": st.floats(allow_nan=True, allow_infinity=True),
    }
)


@settings(max_examples=200)
@given(
    names,
    names,
    st.lists(term, min_size=0, max_size=4),
    st.sampled_from([None, "bfloat16", "float16", "float32", "int8"]),
)
def test_recipe_parsing_accepts_exactly_the_valid_ones(name, base, terms, dtype):
    data = {"name": name, "base": base, "method": "linear", "terms": terms}
    if dtype:
        data["dtype"] = dtype
    # merges compute in float32: a weight must stay finite once rounded there (numpy's rounding)
    with np.errstate(over="ignore"):
        valid = bool(terms) and all(np.isfinite(np.float32(t["weight"])) for t in terms) and dtype != "int8"
    if valid:
        spec = parse_recipe(data)
        assert [t.weight for t in spec.terms] == [t["weight"] for t in terms]
        assert spec.dtype == dtype
    else:
        with pytest.raises(InvalidRecipe) as e:
            parse_recipe(data)
        assert "\n" not in str(e.value)


@settings(max_examples=100)
@given(st.dictionaries(st.text(min_size=1, max_size=10), st.integers() | st.text(max_size=5), max_size=4))
def test_unknown_keys_are_named(extra):
    data = {"name": "r", "base": "b", "terms": [{"vector": "v", "weight": 1.0}], **extra}
    unknown = set(extra) - {"name", "base", "method", "terms", "dtype", "parameters"}
    if not unknown:
        return
    with pytest.raises(InvalidRecipe) as e:
        parse_recipe(data)
    assert any(f"{k}: unknown key" in str(e.value) for k in unknown)


@pytest.fixture(scope="module")
def versions_reg(tmp_path_factory, models):
    from registry import Registry

    reg = Registry.init(tmp_path_factory.mktemp("props") / "home")
    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("v", "tiny", models["plus"])
    reg.approve("v", "property test", kind="vector")
    for i in range(1, 6):
        reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "v", "weight": float(i)}]})
        reg.approve(f"r@v{i}", "property test")
    yield reg
    reg.close()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["prod", "staging", "canary"]), st.integers(1, 5)), min_size=1, max_size=6
    )
)
def test_reference_resolution_follows_alias_moves(versions_reg, moves):
    expected = {}
    for alias, version in moves:
        versions_reg.set_alias(f"r@v{version}", alias)
        expected[alias] = version
    for alias, version in expected.items():
        assert versions_reg.recipe(f"r@{alias}").version == version
        assert versions_reg.recipe(f"r@{alias}").terms[0].weight == float(version)
    assert versions_reg.recipe("r").version == 5
    for n in range(1, 6):
        assert versions_reg.recipe(f"r@v{n}").version == n
