"""Recorded evaluations: written once, read back equal, tied to one digest, checked by digest."""

from __future__ import annotations

import dataclasses
import json

import pytest
import sqlalchemy as sa

from registry.db import engine as dbmod
from registry.db.revision import SCHEMA_HEAD
from registry.errors import IntegrityError, RegistryError
from registry.records import evaluations as ev


def fields(reg, ref="helpful", kind="vector", **over):
    v = reg.vector(ref) if kind == "vector" else reg.recipe(ref)
    digest = v.digest if kind == "vector" else v.content_digest
    prompts = ["Why is the sky blue?", "How do magnets work? <b>&amp;</b>"]
    grid = {v.name if kind == "vector" else "helpful": [-1.0, 0.0, 1.0]}
    name = next(iter(grid))
    return {
        "subject_kind": kind,
        "subject_ref": v.ref,
        "subject_digest": digest,
        "base_name": "tiny",
        "base_digest": v.base.digest,
        "evaluators": {"answer_length": "0.1.0", "ppl_drift": "0.1.0"},
        "prompts_digest": ev.prompts_digest(prompts),
        "prompts_source": "given prompts (2)",
        "seed": 7,
        "decoding": {"max_new_tokens": 8, "temperature": 0.0},
        "grid": grid,
        "points": [
            {
                "etas": {name: e},
                "metrics": {"answer_length": 10.0 + e, "ppl_drift": 2.5 * e * e},
                "samples": [{"prompt": p, "answer": f"answer {e} to {p}"} for p in prompts],
            }
            for e in grid[name]
        ],
        "library_versions": {"torch": "2.x"},
        "seconds": 1.25,
        "created_by": reg.actor,
        "details": {"subject_point": {name: 1.0}},
        **over,
    }


def test_recorded_evaluation_reads_back_equal(loaded):
    rec = loaded.record_evaluation(**fields(loaded))
    assert rec.id > 0 and len(rec.digest) == 64
    again = loaded.evaluation(rec.id)
    assert again == rec
    assert loaded.evaluations("helpful@v1") == [rec]
    with loaded.Session() as s:
        assert ev.get_evaluation(s, rec.id) == rec
        assert ev.evaluations_for(s, "vector", rec.subject_digest) == [rec]
    assert rec.points[2].metrics == {"answer_length": 11.0, "ppl_drift": 2.5}
    assert rec.subject_metrics() == {"answer_length": 11.0, "ppl_drift": 2.5}
    assert rec.worst("ppl_drift") == 2.5
    doc = json.loads(json.dumps(rec.as_json()))  # JSON-serialisable as it is
    assert doc["points"][1]["samples"][1]["prompt"] == "How do magnets work? <b>&amp;</b>"
    assert ev.record_digest(rec) == rec.digest == doc["digest"]
    [event] = [e for e in loaded.log("helpful@v1") if e.action == "evaluation.recorded"]
    assert event.details["evaluation"] == rec.id and event.actor == "tester"


def test_newest_first_and_another_digest_is_not_listed(loaded):
    first = loaded.record_evaluation(**fields(loaded))
    second = loaded.record_evaluation(**fields(loaded, seed=8))
    loaded.record_evaluation(**fields(loaded, "harmless"))
    assert [e.id for e in loaded.evaluations("helpful")] == [second.id, first.id]
    assert len(loaded.evaluations()) == 3


def test_a_changed_record_does_not_match_its_digest(loaded):
    rec = loaded.record_evaluation(**fields(loaded))
    doc = ev.content(rec)
    doc["points"][0]["metrics"]["ppl_drift"] = -1.0
    with loaded.Session() as s, pytest.raises(IntegrityError, match="changed after it was recorded"):
        ev.record_evaluation(
            s,
            **{k: v for k, v in doc.items() if k != "schema"} | {"created_at": rec.created_at},
            digest=rec.digest,
        )
    with loaded.Session.begin() as s:
        s.execute(sa.text("UPDATE evaluations SET seed = 99"))
    with pytest.raises(IntegrityError, match="does not match its digest"):
        ev.verify_record(loaded.evaluation(rec.id))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f["points"].pop(), "every grid point"),
        (lambda f: f["points"][1]["samples"].reverse(), "same prompts at every point"),
        (lambda f: f["points"][1]["metrics"].pop("ppl_drift"), "same metrics at every point"),
        (lambda f: f.update(subject_kind="base"), "a vector or a recipe"),
        (lambda f: f.update(grid={}), "one or two terms"),
    ],
)
def test_malformed_records_are_refused_and_nothing_is_written(sqlite_reg, models, change, message):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    f = fields(sqlite_reg)
    change(f)
    with pytest.raises(RegistryError, match=message):
        sqlite_reg.record_evaluation(**f)
    assert sqlite_reg.evaluations() == []


def test_non_finite_metrics_are_kept_as_null(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    f = fields(sqlite_reg)
    f["points"][0]["metrics"]["ppl_drift"] = float("nan")
    rec = sqlite_reg.record_evaluation(**f)
    assert sqlite_reg.evaluation(rec.id).points[0].metrics["ppl_drift"] is None
    assert rec.worst("ppl_drift") == 2.5


def test_evaluations_migration_down_refuses_with_records_and_cycles_without(loaded):
    assert dbmod.current_revision(loaded.engine) == SCHEMA_HEAD
    rec = loaded.record_evaluation(**fields(loaded))
    with pytest.raises(RuntimeError, match="recorded evaluations"):
        dbmod.downgrade(loaded.engine, "0011")
    assert loaded.evaluation(rec.id) == rec  # nothing dropped
    with loaded.Session.begin() as s:
        s.execute(sa.text("DELETE FROM evaluations"))
    dbmod.downgrade(loaded.engine, "0011")
    assert "evaluations" not in sa.inspect(loaded.engine).get_table_names()
    dbmod.upgrade(loaded.engine)
    assert dbmod.current_revision(loaded.engine) == SCHEMA_HEAD
    again = loaded.record_evaluation(**fields(loaded))
    assert dataclasses.replace(again, id=rec.id, created_at=rec.created_at, digest="") == dataclasses.replace(
        rec, digest=""
    )
