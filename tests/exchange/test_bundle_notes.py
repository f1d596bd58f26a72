"""Bundles carry a recipe's tune and retention records: exported, checked, re-recorded (audited),
and the outputs materialized from them come out alike in both registries."""

from __future__ import annotations

import json
import tarfile

import pytest
import yaml
from sqlalchemy import select

from registry.db.models import AuditEvent
from registry.errors import IntegrityError
from registry.evaluation.results_log import recorded_notes
from registry.exchange.bundle import export_bundle, import_bundle
from tests.test_security import ec_keys


def _events(reg, ref: str) -> list[tuple[str, dict]]:
    with reg.Session() as s:
        q = select(AuditEvent).where(AuditEvent.object == ref).order_by(AuditEvent.id)
        return [(e.action, e.details) for e in s.scalars(q)]


@pytest.fixture
def noted(sqlite_reg, models, tmp_path):
    """Recipe hs@v1 with a real retention check (a gated materialize) and a tune record."""
    reg = sqlite_reg
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.add_recipe(
        {"name": "hs", "base": "tiny", "dtype": "float32", "terms": [{"vector": "helpful", "weight": -3.0}]}
    )
    reg.materialize("hs", tmp_path / "gated", max_ppl_drift=10.0)
    # what `registry tune` records for the version it writes (tests/test_tune.py runs real searches)
    tune = {"from": "hs@v0", "metric": "verbose_margin", "target": 5.0, "vary": "helpful",
            "range": [0.0, 2.0], "tolerance": 0.01, "evaluations": [[1.0, 4.2], [1.5, 5.01]],
            "eta": 1.5, "value": 5.01}  # fmt: skip
    reg.audit_now("recipe.tune", "hs@v1", tune)
    return reg


def test_notes_round_trip(noted, models, tmp_path, cli, monkeypatch):
    from registry import Registry

    source_notes = recorded_notes(noted, "hs@v1")
    assert set(source_notes) == {"tune", "retention"} and source_notes["retention"]["passed"] is True
    bundle = tmp_path / "hs.bundle"
    priv, pub = ec_keys(tmp_path)
    code, _out, err = cli("export", "hs@v1", "--out", bundle, "--sign-key", priv)  # notes signed
    assert code == 0, err
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    carried = manifest["recipes"][0]["notes"]
    assert [n["action"] for n in carried] == ["recipe.retention", "recipe.tune"]
    assert carried[1]["details"] == source_notes["tune"] and carried[0]["actor"] == "tester"

    target = Registry.init(tmp_path / "target")
    kid = target.trust(pub).key_id
    monkeypatch.setenv("REGISTRY_ACTOR", "importer")
    code, out, err = cli(
        "--home", tmp_path / "target", "import-bundle", bundle, "--base-path", f"tiny={models['base']}"
    )
    assert code == 0, err
    assert "1 vector(s), 1 recipe(s) and 2 tune/retention record(s)" in out
    assert recorded_notes(target, "hs@v1") == source_notes
    events = _events(target, "hs@v1")
    assert [a for a, _ in events] == [
        "recipe.import-bundle",
        "recipe.retention",
        "recipe.tune",
        "recipe.import-notes",
    ]
    with target.Session() as s:
        actors = {e.actor for e in s.scalars(select(AuditEvent).where(AuditEvent.object == "hs@v1"))}
    assert actors == {"importer"}
    provenance = events[-1][1]
    assert provenance["bundle"] == str(bundle) and provenance["verified"] is True
    assert provenance["signed_by"] == kid
    assert [(n["action"], n["source_actor"]) for n in provenance["notes"]] == [
        ("recipe.retention", "tester"),
        ("recipe.tune", "tester"),
    ]
    # the tune record travels into outputs: both registries write the same card and lock
    a = noted.materialize("hs", tmp_path / "a", reuse=False)
    b = target.materialize("hs@v1", tmp_path / "b")
    assert a.output_digest == b.output_digest
    lock = json.loads((tmp_path / "b" / "registry-lock.json").read_text())
    assert lock["notes"]["tune"] == source_notes["tune"]
    card = yaml.safe_load((tmp_path / "b" / "README.md").read_text().split("---")[1])
    assert card["preference_notes"]["tune"]["eta"] == 1.5
    # importing again records nothing twice
    before = _events(target, "hs@v1")
    assert import_bundle(target, bundle)["notes"] == 0
    assert _events(target, "hs@v1") == before
    target.close()


def test_notes_reach_an_identical_recipe_already_here(noted, models, tmp_path):
    from registry import Registry

    target = Registry.init(tmp_path / "target")
    plain = tmp_path / "plain.bundle"
    with noted.Session.begin() as s:  # a bundle made before any notes were recorded
        hidden = list(
            s.scalars(select(AuditEvent).where(AuditEvent.action.in_(["recipe.tune", "recipe.retention"])))
        )
        for e in hidden:
            e.action = "x-" + e.action
    export_bundle(noted, ["hs@v1"], plain)
    with noted.Session.begin() as s:
        for e in s.scalars(select(AuditEvent).where(AuditEvent.action.like("x-%"))):
            e.action = e.action[2:]
    assert import_bundle(target, plain, {"tiny": str(models["base"])})["notes"] == 0
    assert recorded_notes(target, "hs@v1") == {}
    priv, pub = ec_keys(tmp_path)
    target.trust(pub)
    export_bundle(noted, ["hs@v1"], tmp_path / "full.bundle", sign_key=priv)
    again = import_bundle(target, tmp_path / "full.bundle")
    assert (again["vectors"], again["recipes"], again["notes"]) == ([], [], 2)
    assert recorded_notes(target, "hs@v1") == recorded_notes(noted, "hs@v1")
    target.close()


@pytest.mark.parametrize(
    "note, message",
    [
        ({"action": "recipe.approve", "details": {}}, "a note is not a tune or retention record"),
        ({"action": "recipe.tune", "details": "x"}, "a note is not a tune or retention record"),
        ({"action": "recipe.tune", "details": {"eta": float("nan")}}, "a recipe.tune note is not plain JSON"),
        (
            {"action": "recipe.tune", "details": {"pad": "x" * 70000}},
            "a recipe.tune note exceeds 65536 bytes",
        ),
    ],
)
def test_bad_notes_are_refused_and_nothing_lands(noted, models, tmp_path, note, message):
    from registry import Registry

    bundle = tmp_path / "hs.bundle"
    export_bundle(noted, ["hs@v1"], bundle)
    work = tmp_path / "x"
    with tarfile.open(bundle) as tar:
        tar.extractall(work, filter="data")
    manifest = json.loads((work / "manifest.json").read_text())
    manifest["recipes"][0]["notes"].append(note)
    (work / "manifest.json").write_text(json.dumps(manifest))
    bad = tmp_path / "bad.bundle"
    with tarfile.open(bad, "w") as tar:
        for p in sorted(work.rglob("*")):
            tar.add(p, p.relative_to(work).as_posix(), recursive=False)
    target = Registry.init(tmp_path / "target")
    with pytest.raises(IntegrityError, match=rf"bundle recipe hs@v1: {message}"):
        import_bundle(target, bad, {"tiny": str(models["base"])})
    assert target.vectors() == [] and target.bases() == [] and recorded_notes(target, "hs@v1") == {}
    target.close()
