"""`approval_requires_evaluation` (and `approval_max_ppl_drift`): approval on recorded evidence
of the exact digest, refused in one line and audited on every path (library, CLI, console, REST)."""

from __future__ import annotations

import pytest

from registry.errors import GovernanceRefused
from tests.console.conftest import console, csrf_of, sign_in  # noqa: F401 (the console fixture)
from tests.console.test_api import one_line_error
from tests.console.test_pages import approve_form
from tests.records.test_evaluations import fields


def require(reg, drift=None):
    from registry.governance.policy import set_policy

    actor = reg.actor
    reg.actor = "tester"  # a policy admin
    set_policy(reg, "approval_requires_evaluation", True)
    if drift is not None:
        set_policy(reg, "approval_max_ppl_drift", drift)
    reg.actor = actor


def refusals(reg, ref, kind="vector"):
    return [e.details["reason"] for e in reg.log(ref) if e.action == f"refused.{kind}.approved"]


def test_library_refuses_without_evidence_and_allows_with_it(loaded):
    require(loaded)
    assert loaded.policy().approval_requires_evaluation is True
    with pytest.raises(GovernanceRefused, match="has no recorded evaluation on base tiny") as e:
        loaded.approve("helpful", "looks fine", kind="vector")
    assert "\n" not in str(e.value) and "registry sweep helpful@v1 --record" in str(e.value)
    assert refusals(loaded, "helpful@v1") == [str(e.value)]
    assert loaded.vector("helpful").status == "draft"
    # an evaluation of another digest (another vector) does not count
    loaded.record_evaluation(**fields(loaded, "harmless"))
    with pytest.raises(GovernanceRefused, match="no recorded evaluation"):
        loaded.approve("helpful", "looks fine", kind="vector")
    # nor one of this vector's digest on another base digest
    loaded.record_evaluation(**fields(loaded, base_digest="0" * 64))
    with pytest.raises(GovernanceRefused, match="no recorded evaluation"):
        loaded.approve("helpful", "looks fine", kind="vector")
    # nor one that no longer matches its digest (edited in the database)
    rec = loaded.record_evaluation(**fields(loaded))
    import sqlalchemy as sa

    with loaded.Session.begin() as s:
        s.execute(sa.text("UPDATE evaluations SET seconds = 0 WHERE id = :i"), {"i": rec.id})
    with pytest.raises(GovernanceRefused, match="no recorded evaluation"):
        loaded.approve("helpful", "looks fine", kind="vector")
    loaded.record_evaluation(**fields(loaded))
    assert loaded.approve("helpful", "evaluated", kind="vector").status == "approved"
    # a recipe needs an evaluation of its own content digest, not its vectors'
    loaded.record_evaluation(**fields(loaded, "harmless"))
    loaded.approve("harmless", "evaluated", kind="vector")
    loaded.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    with pytest.raises(GovernanceRefused, match=r"recipe mix@v1 .* has no recorded evaluation"):
        loaded.approve("mix", "ok")
    loaded.record_evaluation(**fields(loaded, "mix", kind="recipe"))
    assert loaded.approve("mix", "ok").status == "approved"


def test_drift_limit(loaded):
    require(loaded, drift=2)
    assert loaded.policy().approval_max_ppl_drift == 2.0
    loaded.record_evaluation(**fields(loaded))  # ppl_drift 2.5 at η = 1 (the vector itself)
    with pytest.raises(GovernanceRefused, match=r"approval_max_ppl_drift 2%.*perplexity drift \+2.50%"):
        loaded.approve("helpful", "ok", kind="vector")
    assert "approval_max_ppl_drift" in refusals(loaded, "helpful@v1")[-1]
    require(loaded, drift="3%")
    assert loaded.approve("helpful", "ok", kind="vector").status == "approved"
    # an evaluation that measured no drift does not satisfy a drift limit
    f = fields(loaded, "harmless")
    for p in f["points"]:
        p["metrics"].pop("ppl_drift")
    f["evaluators"].pop("ppl_drift")
    loaded.record_evaluation(**f)
    with pytest.raises(GovernanceRefused, match="show no perplexity drift"):
        loaded.approve("harmless", "ok", kind="vector")


def test_policy_values_are_checked(loaded, cli):
    code, _, err = cli("policy", "set", "approval_max_ppl_drift", "--", "-1")
    assert code == 1 and "approval_max_ppl_drift must be a percentage" in err
    code, _, err = cli("--json", "policy", "set", "approval_requires_evaluation", "true")
    assert code == 0, err
    code, _, err = cli("approve", "helpful", "--vector", "--reason", "ok")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "approval_requires_evaluation: vector helpful@v1" in err
    loaded.record_evaluation(**fields(loaded))
    code, _, err = cli("approve", "helpful", "--vector", "--reason", "ok")
    assert code == 0, err


def test_console_and_rest_refuse_alike(console):  # noqa: F811 (the fixture imported above)
    reg = console.reg
    require(reg)
    c = console.client()
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "ok"}, headers=console.auth("bob"))
    assert "has no recorded evaluation" in one_line_error(r, 409)
    page = console.client()
    sign_in(page, "bob")
    r = approve_form(page, "vectors", "harmless@v1", "ok", csrf_of(page.get("/queue").text))
    assert r.status_code == 409 and "has no recorded evaluation" in r.text
    assert [e.actor for e in reg.log("helpful@v1") if e.action == "refused.vector.approved"] == ["bob"]
    assert [e.actor for e in reg.log("harmless@v1") if e.action == "refused.vector.approved"] == ["bob"]
    reg.record_evaluation(**fields(reg))
    reg.record_evaluation(**fields(reg, "harmless"))
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "ok"}, headers=console.auth("bob"))
    assert r.status_code == 200, r.text
    r = approve_form(page, "vectors", "harmless@v1", "ok", csrf_of(page.get("/queue").text))
    assert r.status_code == 303
    assert reg.vector("harmless").status == "approved"
