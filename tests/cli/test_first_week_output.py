"""What a new team reads (issue 34, items 10–14 and 16): human output without Python values,
a lineage tree that draws each recipe once and names an import's sources, a `lineage --lock`
that verifies the folder, deprecated vectors shown wherever a recipe is listed, an
interference warning that names every conflict, and governance fields under `--json`."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from registry.errors import GovernanceRefused

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PYTHON_VALUES = re.compile(r"\b(None|True|False)\b")


@pytest.fixture
def team(sqlite_reg, models, tmp_path):
    """tiny + helpful, harmless (imports); hs@v1 over both, approved, aliased prod, materialized;
    `solo` a draft recipe whose approval was refused (its vector is a draft)."""
    reg = sqlite_reg
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    reg.import_vector("drafty", "tiny", models["other_base"])
    terms = [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": 0.5}]
    reg.add_recipe({"name": "hs", "base": "tiny", "terms": terms})
    reg.add_recipe({"name": "solo", "base": "tiny", "terms": [{"vector": "drafty", "weight": 1.0}]})
    for v in ("helpful@v1", "harmless@v1"):
        reg.approve(v, "reviewed", kind="vector")
    reg.approve("hs@v1", "evals passed")
    reg.set_alias("hs@v1", "prod")
    with pytest.raises(GovernanceRefused):
        reg.approve("solo@v1", "looks fine")
    reg.materialize("hs@prod", tmp_path / "out")
    return reg


def test_human_output_has_no_python_values_and_times_end_in_z(team, cli, tmp_path):
    from tests.test_json_schemas import ec_keys

    _, pub = ec_keys(tmp_path)
    assert cli("trust", "add", pub)[0] == 0
    assert cli("user", "add", "alice", "--role", "reviewer")[0] == 0
    shown = {}
    for args in (
        ("base", "show", "tiny"),  # a local base: no revision
        ("vector", "show", "helpful"),  # an import: no plugin, no seed
        ("recipe", "show", "hs@prod"),
        ("lineage", "tiny"),  # a refused approval; options of an import
        ("user", "list"),  # no password set
        ("trust", "list"),
    ):
        code, out, err = cli(*args)
        assert code == 0, err
        shown[args[0]] = out
        assert not PYTHON_VALUES.findall(out), (args, PYTHON_VALUES.findall(out), out)
    assert "revision" not in shown["base"]
    assert "lineage: import run 1 (succeeded)" in shown["vector"] and "plugin" not in shown["vector"]
    assert "approval by tester refused at" in shown["lineage"]
    assert "options lossless=true" in shown["lineage"]
    [alice] = [line for line in shown["user"].splitlines() if line.strip().startswith("alice")]
    assert "none" in alice.split() and ISO_Z.search(alice)
    [key] = [line for line in shown["trust"].splitlines() if "trusted" in line]
    assert ISO_Z.search(key)
    for args in (("user", "list"), ("trust", "list")):
        rows = json.loads(cli("--json", *args)[1])
        assert all(ISO_Z.fullmatch(r[k]) for r in rows for k in ("created_at", "added_at") if k in r)
    tree = json.loads(cli("--json", "lineage", "hs@v1")[1])
    assert ISO_Z.fullmatch(tree["runs"][0]["vectors"][0]["recipes"][0]["approvals"][0]["at"])


def test_lineage_text_hides_none_options_of_a_training_run():
    from registry.cli.lineage import render

    run = {"id": 3, "kind": "train", "plugin": "verbose", "plugin_version": "1", "seed": 0,
           "status": "succeeded", "params": {"lora_rank": None, "steps": 2, "lossless": True},
           "vectors": []}  # fmt: skip
    text = render({"base": {"name": "tiny", "digest": "ab" * 32, "source": "/m"}, "runs": [run]})
    assert "options lossless=true, steps=2" in text and "lora_rank" not in text
    assert not PYTHON_VALUES.findall(text)


def test_lineage_draws_a_recipe_once_and_names_import_sources(team, cli, models):
    code, out, err = cli("lineage", "hs@v1")
    assert code == 0, err
    assert out.count("recipe hs@v1 (linear:") == 1  # drawn once, under its first vector
    assert out.count("alias hs@prod") == 1 and out.count("materialized ") == 1
    assert "recipe hs@v1 (see under vector helpful@v1)" in out  # then a reference under harmless
    assert f"positive from {models['plus'].resolve()} (1 files hashed)" in out  # its safetensors
    assert "process: host=" in out and "{'" not in out  # no Python dict reprs
    assert f"negative from {models['minus'].resolve()}" in out
    assert "negative: the base tiny" in out  # helpful's θ− is the base
    tree = json.loads(cli("--json", "lineage", "hs@v1")[1])
    files = tree["runs"][1]["sources"]["positive"]["files"]  # what the text's count is of
    assert f"positive from {models['plus2'].resolve()} ({len(files)} files hashed)" in out


def test_lineage_lock_of_an_edited_copy_fails_like_verify_lock(team, cli, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "out", copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["num_hidden_layers"] = 1
    (copy / "config.json").write_text(json.dumps(cfg))
    lock = copy / "registry-lock.json"
    v_code, _, _ = cli("verify", "--lock", lock)
    code, out, err = cli("lineage", "--lock", lock)
    assert v_code == code == 1
    assert "matches" not in out and "FAILS verification" in out and "config.json: sha256 mismatch" in out
    assert err.strip() == "Error: lock check found 1 problem(s): config.json: sha256 mismatch"
    data = json.loads(cli("--json", "lineage", "--lock", lock)[1])
    assert data["lock"]["verified"] is False and data["lock"]["problems"] == ["config.json: sha256 mismatch"]
    code, out, _ = cli("lineage", "--lock", tmp_path / "out" / "registry-lock.json")  # the original
    assert code == 0 and "(verified: matches its folder" in out.splitlines()[0]


def test_recipes_on_a_deprecated_vector_say_so(team, cli):
    team.deprecate("harmless@v1", "red-team regression", kind="vector")
    code, out, _ = cli("recipe", "list")
    assert code == 0
    [row] = [line for line in out.splitlines() if line.strip().startswith("hs@v1")]
    assert "approved (uses deprecated harmless@v1)" in row and "prod" in row
    [solo] = [line for line in out.splitlines() if line.strip().startswith("solo@v1")]
    assert "deprecated" not in solo
    out = cli("recipe", "show", "hs@prod")[1]
    assert "warning: uses deprecated vector(s) harmless@v1" in out and "null" not in out
    rows = json.loads(cli("--json", "recipe", "list")[1])
    assert {r["ref"]: r["deprecated_vectors"] for r in rows} == {"hs@v1": ["harmless@v1"], "solo@v1": []}
    shown = json.loads(cli("--json", "recipe", "show", "hs@v1")[1])
    assert [t["status"] for t in shown["terms"]] == ["approved", "deprecated"]


def test_interference_warning_names_every_conflict_and_identical_bytes(sqlite_reg, models, cli):
    reg = sqlite_reg
    reg.import_vector("a", "tiny", models["plus"])
    reg.import_vector("b", "tiny", models["plus"])  # the same θ+: byte-identical to a@v1
    assert reg.vector("b").digest == reg.vector("a").digest
    code, _, err = cli("vector", "import", "c", "--base", "tiny", "--positive", models["plus"])
    assert code == 0, err
    cosines = json.loads(cli("--json", "vector", "show", "c")[1])["interference"]["cosines"]
    assert set(cosines) == {"a@v1", "b@v1"}
    threshold = reg.policy().interference.threshold
    assert all(abs(c["global"]) > threshold for c in cosines.values())
    [line] = [x for x in err.splitlines() if x.startswith("warning: vector c")]
    assert "interferes with 2 vectors" in line and "a@v1 (1.0000)" in line and "b@v1 (1.0000)" in line
    digest = reg.vector("a").digest
    assert f"vector c is byte-identical to a@v1, b@v1 (same digest {digest[:16]}…)" in line
    report = reg.vector("c").interference
    assert report["identical_to"] == ["a@v1", "b@v1"] and report["conflicts"] == ["a@v1", "b@v1"]


def test_show_json_has_creator_approver_and_reason(team, cli):
    v = json.loads(cli("--json", "vector", "show", "helpful")[1])
    assert (v["created_by"], v["status_actor"], v["status_reason"]) == ("tester", "tester", "reviewed")
    r = json.loads(cli("--json", "recipe", "show", "hs@prod")[1])
    assert (r["created_by"], r["status_actor"], r["status_reason"]) == ("tester", "tester", "evals passed")
    d = json.loads(cli("--json", "vector", "show", "drafty")[1])
    assert d["status_actor"] is None and d["created_by"] == "tester"
    from tests.test_json_schemas import SCHEMAS

    for name, doc in (("vector-show", v), ("recipe-show", r)):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        assert {"created_by", "status_actor", "status_reason"} <= set(schema["required"])
        import jsonschema

        jsonschema.validate(doc, schema)
