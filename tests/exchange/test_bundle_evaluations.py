"""Recorded evaluations travel in bundles with their vector or recipe: round trip, signature,
tampering refused, another digest refused; lineage lists them."""

from __future__ import annotations

import json

import pytest

from registry.errors import GovernanceRefused, IntegrityError
from registry.records import evaluations as ev
from tests.records.test_evaluations import fields
from tests.test_json_schemas import ec_keys
from tests.test_security import rewrite


@pytest.fixture
def evaluated(sqlite_reg, models):
    r = sqlite_reg
    r.import_vector("helpful", "tiny", models["plus"])
    r.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    r.add_recipe(
        {
            "name": "mix",
            "base": "tiny",
            "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": -0.5}],
        }
    )
    recs = {
        "helpful": r.record_evaluation(**fields(r)),
        "harmless": r.record_evaluation(**fields(r, "harmless")),
        "mix": r.record_evaluation(**fields(r, "mix", kind="recipe")),
    }
    return r, recs


@pytest.fixture
def target(tmp_path, models):
    from registry import Registry

    t = Registry.init(tmp_path / "target")
    t.add_base("tiny", str(models["base"]))
    yield t
    t.close()


def test_round_trip_signed_and_unsigned(evaluated, target, tmp_path):
    from registry.exchange.bundle import export_bundle, import_bundle
    from registry.governance.policy import set_policy

    source, recs = evaluated
    priv, pub = ec_keys(tmp_path)
    export_bundle(source, ["mix"], tmp_path / "signed.tar", sign_key=priv)
    export_bundle(source, ["mix"], tmp_path / "plain.tar")
    manifest = json.loads(
        __import__("tarfile").open(tmp_path / "signed.tar").extractfile("manifest.json").read()
    )
    assert [e["digest"] for e in manifest["recipes"][0]["evaluations"]] == [recs["mix"].digest]
    assert manifest["recipes"][0]["evaluations_signatures"]

    # unsigned: kept and shown, marked imported, but it is no evidence for the policy
    result = import_bundle(target, tmp_path / "plain.tar")
    assert result["evaluations"] == 3
    [mix] = target.evaluations("mix")
    assert ev.content(mix) == ev.content(recs["mix"]) and mix.digest == recs["mix"].digest
    assert mix.imported_by == "tester" and mix.signed_by is None and not mix.counts_as_evidence
    set_policy(target, "approval_requires_evaluation", True)
    with pytest.raises(GovernanceRefused, match="no recorded evaluation"):
        target.approve("helpful", "ok", kind="vector")
    assert import_bundle(target, tmp_path / "plain.tar")["evaluations"] == 0  # not twice

    # signed by a key trusted here: lands signed, and counts
    from registry import Registry

    other = Registry.init(tmp_path / "other")
    other.add_base("tiny", str(source.base("tiny").path))
    other.trust(pub, "release")
    assert import_bundle(other, tmp_path / "signed.tar")["evaluations"] == 3
    got = {e.subject_ref: e for e in other.evaluations()}
    assert {k: v.digest for k, v in got.items()} == {
        "helpful@v1": recs["helpful"].digest,
        "harmless@v1": recs["harmless"].digest,
        "mix@v1": recs["mix"].digest,
    }
    assert all(e.signed_by and e.counts_as_evidence for e in got.values())
    assert got["helpful@v1"].points == recs["helpful"].points
    set_policy(other, "approval_requires_evaluation", True)
    assert other.approve("helpful", "evaluated at the source", kind="vector").status == "approved"
    other.close()


def test_tampered_evaluation_is_refused_and_nothing_written(evaluated, target, tmp_path):
    from registry.exchange.bundle import export_bundle, import_bundle

    source, _ = evaluated
    export_bundle(source, ["mix"], tmp_path / "b.tar")

    def better(doc):
        doc["vectors"][0]["evaluations"][0]["points"][2]["metrics"]["ppl_drift"] = 0.0

    def answer(doc):
        doc["recipes"][0]["evaluations"][0]["points"][0]["samples"][0]["answer"] = "<script>x</script>"

    for i, change in enumerate((better, answer)):
        bad = rewrite(tmp_path / "b.tar", tmp_path / f"bad{i}.tar", manifest=change)
        with pytest.raises(IntegrityError, match=r"evaluation 1 does not match its digest"):
            import_bundle(target, bad)
        assert target.vectors() == [] and target.recipes() == [] and target.evaluations() == []


def test_an_evaluation_of_another_digest_is_refused(evaluated, target, tmp_path):
    from registry.exchange.bundle import export_bundle, import_bundle

    source, _ = evaluated
    export_bundle(source, ["mix"], tmp_path / "b.tar")

    def swap(doc):  # harmless's (genuine, digest-sound) evaluation under helpful's entry
        doc["vectors"][0]["evaluations"] = doc["vectors"][1]["evaluations"]

    bad = rewrite(tmp_path / "b.tar", tmp_path / "swap.tar", manifest=swap)
    with pytest.raises(IntegrityError, match="evaluation 1 is of another digest or base"):
        import_bundle(target, bad)
    assert target.vectors() == [] and target.evaluations() == []


def test_lineage_lists_evaluations(evaluated, cli):
    source, recs = evaluated
    tree = source.lineage("mix")
    run_h = tree["runs"][0]
    vec = run_h["vectors"][0]
    assert [e["id"] for e in vec["evaluations"]] == [recs[vec["ref"].split("@")[0]].id]
    assert [e["id"] for e in vec["recipes"][0]["evaluations"]] == [recs["mix"].id]
    code, out, err = cli("lineage", "mix")
    assert code == 0, err
    assert f"evaluation {recs['mix'].id}: η grid helpful[3], answer_length, ppl_drift" in out
    code, out, err = cli("--json", "lineage", "helpful")
    assert (
        code == 0
        and json.loads(out)["runs"][0]["vectors"][0]["evaluations"][0]["digest"] == recs["helpful"].digest
    )
