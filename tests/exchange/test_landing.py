"""Statuses across registries (issue 24.10, 27.4): what a bundle's approvals and deprecations do here."""

from __future__ import annotations

import json

import pytest

from tests.test_security import ec_keys


@pytest.fixture
def signed(source, tmp_path):
    """The source with both vectors approved (unsigned) and mix@v1 approved and signed."""
    priv, pub = ec_keys(tmp_path)
    for v in ("helpful", "harmless"):
        source.approve(v, "reviewed", kind="vector")
    source.approve("mix@v1", "evals passed", sign_key=priv)
    return source, priv, pub


def export(reg, refs, path):
    from registry.exchange.bundle import export_bundle

    export_bundle(reg, refs, path)
    return path


def fresh(tmp_path, name, models, pub=None):
    from registry import Registry

    r = Registry.init(tmp_path / name)
    r.add_base("tiny", str(models["base"]))
    if pub is not None:
        r.trust(pub)
    return r


def test_each_item_says_what_happened_and_trust_add_then_reimport_upgrades(
    signed, target, tmp_path, cli, monkeypatch
):
    source, _priv, pub = signed
    path = export(source, ["mix"], tmp_path / "release.tar")
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("--json", "import-bundle", path)
    assert code == 0, err
    items = json.loads(out)["items"]
    assert [(i["kind"], i["ref"], i["outcome"], i["status"]) for i in items] == [
        ("vector", "helpful@v1", "imported", "draft"),
        ("vector", "harmless@v1", "imported", "draft"),
        ("recipe", "mix@v1", "imported", "draft"),
    ]
    assert "its signer is not trusted here (registry trust add KEY)" in items[2]["reason"]
    assert "carries no signature" in items[0]["reason"]

    assert cli("trust", "add", pub)[0] == 0
    code, out, err = cli("import-bundle", path)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(
        "vector helpful@v1: status upgraded, approved (imported approved, signature by key "
    )
    assert "recipe mix@v1's signature covers its digest" in lines[0]
    assert lines[2].startswith(
        "recipe mix@v1: status upgraded, approved (imported approved, signature by key "
    )
    assert lines[3] == f"imported 0 vector(s), 0 recipe(s) and 0 tune/retention record(s) from {path}"
    assert target.recipe("mix@v1").status == "approved"
    assert {v.status for v in target.vectors()} == {"approved"}
    upgrades = [e for e in target.log() if e.action in ("vector.approved", "recipe.approved")]
    assert [(e.object, e.details["from"], e.details["bundle"]) for e in upgrades] == [
        ("helpful@v1", "draft", str(path)),
        ("harmless@v1", "draft", str(path)),
        ("mix@v1", "draft", str(path)),
    ]
    assert len(upgrades[2].details["signed_by"]) == 64
    again = json.loads(cli("--json", "import-bundle", path)[1])["items"]
    assert {(i["outcome"], i["status"]) for i in again} == {("already present", "approved")}


def test_a_vector_signature_binds_the_base_digest_not_its_name(source, tmp_path, models):
    from registry.exchange.bundle import import_bundle
    from tests.test_security import rewrite

    priv, pub = ec_keys(tmp_path)
    source.approve("helpful", "reviewed", kind="vector", sign_key=priv)
    path = export(source, ["helpful"], tmp_path / "helpful.tar")

    honest = fresh(tmp_path, "honest", models, pub)
    import_bundle(honest, path)
    assert honest.vector("helpful@v1").status == "approved"

    # another model of the same shapes, registered under the same name: φ signed for one base
    # must not come out approved for the other
    from registry import Registry

    other = Registry.init(tmp_path / "other")
    other.add_base("tiny", str(models["other_base"]))
    other.trust(pub)
    b = other.base("tiny")

    def swap_base(doc):
        doc["bases"][0].update(digest=b.digest, files={f.filename: f.sha256 for f in b.files})

    import_bundle(other, rewrite(path, tmp_path / "swapped.tar", manifest=swap_base))
    v = other.vector("helpful@v1")
    assert v.status == "draft" and "no signature verified against a trusted key" in v.status_reason


def test_deprecation_at_the_source_travels_and_blocks_the_recipe_approval(signed, target, tmp_path, models):
    from registry.exchange.bundle import import_bundle

    source, _priv, pub = signed
    before = export(source, ["mix"], tmp_path / "before.tar")
    source.deprecate("harmless@v1", "withdrawn: bad data", kind="vector")
    after = export(source, ["mix"], tmp_path / "after.tar")
    with __import__("tarfile").open(after) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    history = [h["status"] for h in manifest["vectors"][1]["history"]]
    assert history == ["approved", "deprecated"]

    # a registry that sees the bundle only after the deprecation: the recipe's signed approval
    # (made before it) must not lift the recipe over a deprecated vector
    new = fresh(tmp_path, "new", models, pub)
    report = import_bundle(new, after)
    assert new.vector("harmless@v1").status == "deprecated"
    r = new.recipe("mix@v1")
    assert r.status == "draft" and "harmless@v1 (deprecated)" in r.status_reason
    assert report["items"][2]["status"] == "draft"

    # a registry that imported it while approved: the deprecation reaches it with the next bundle
    target.trust(pub)
    import_bundle(target, before)
    assert target.vector("harmless@v1").status == "approved"
    report = import_bundle(target, after)
    assert target.vector("harmless@v1").status == "deprecated"
    assert [(i["ref"], i["outcome"]) for i in report["items"]][1] == (
        "harmless@v1",
        "deprecated as at the source",
    )
    events = [e for e in target.log("harmless") if e.action == "vector.deprecated"]
    assert events[-1].details["bundle"] == str(after) and events[-1].details["from"] == "approved"


def test_a_recipe_does_not_land_approved_over_a_vector_deprecated_here(signed, target, tmp_path):
    from registry.exchange.bundle import import_bundle

    source, _priv, pub = signed
    import_bundle(target, export(source, ["helpful", "harmless"], tmp_path / "vectors.tar"))
    target.trust(pub)
    target.approve("harmless", "reviewed here", kind="vector")
    target.deprecate("helpful", "recalled here", kind="vector")
    report = import_bundle(target, export(source, ["mix"], tmp_path / "mix.tar"))
    r = target.recipe("mix@v1")
    assert r.status == "draft" and "helpful@v1 (deprecated)" in r.status_reason
    assert target.vector("helpful@v1").status == "deprecated"  # not lifted by the recipe's signature
    assert report["items"][2]["outcome"] == "imported"
