"""`registry trust remove` (issue 24.10): a revoked key's signatures stop counting, at once and later."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, select

from registry.governance.revocation import remove_trusted
from tests.test_security import MIX, ec_keys


@pytest.fixture
def source(home, models):
    from registry import Registry

    r = Registry.init(home)
    r.add_base("tiny", str(models["base"]))
    r.import_vector("helpful", "tiny", models["plus"])
    r.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    r.add_recipe(MIX)
    yield r
    r.close()


@pytest.fixture
def target(tmp_path, models):
    from registry import Registry

    r = Registry.init(tmp_path / "target")
    r.add_base("tiny", str(models["base"]))
    yield r
    r.close()


def test_trust_remove_revokes_the_key_and_the_approvals_that_rested_on_it(
    source, target, tmp_path, cli, monkeypatch
):
    from registry.exchange.bundle import export_bundle, import_bundle

    priv, pub = ec_keys(tmp_path)
    for v in ("helpful", "harmless"):
        source.approve(v, "reviewed", kind="vector")
    source.approve("mix@v1", "evals passed", sign_key=priv)
    path = tmp_path / "release.tar"
    export_bundle(source, ["mix"], path)
    kid = target.trust(pub).key_id
    import_bundle(target, path)
    assert target.recipe("mix@v1").status == "approved"

    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("--json", "trust", "remove", kid[:12], "--reason", "key leaked")
    assert code == 0, err
    report = json.loads(out)
    assert report["key_id"] == kid
    assert report["demoted"] == ["recipe mix@v1", "vector helpful@v1", "vector harmless@v1"]
    assert target.recipe("mix@v1").status == "draft" and {v.status for v in target.vectors()} == {"draft"}
    assert "revoked by tester" in target.recipe("mix@v1").status_reason
    actions = [(e.action, e.object) for e in target.log() if e.action.endswith("approval-revoked")]
    assert actions == [("recipe.approval-revoked", "mix@v1"), ("vector.approval-revoked", "helpful@v1"),
                       ("vector.approval-revoked", "harmless@v1")]  # fmt: skip
    assert [e.details["reason"] for e in target.log() if e.action == "trust.remove"] == ["key leaked"]

    keys = json.loads(cli("--json", "trust", "list")[1])
    assert [(k["key_id"], k["status"], k["revoked_by"]) for k in keys] == [(kid, "revoked", "tester")]
    assert "revoked" in cli("trust", "list")[1]

    # the same signed bundle no longer lifts anything
    report = import_bundle(target, path)
    assert {(i["outcome"], i["status"]) for i in report["items"]} == {("already present", "draft")}
    assert "its signer is not trusted here" in report["items"][2]["reason"]

    # a revoked key is never trusted again, and removing it twice says so
    code, _out, err = cli("trust", "add", pub)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "was revoked by tester" in err
    code, _out, err = cli("trust", "remove", kid)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "already revoked" in err


def test_local_approvals_signed_with_a_revoked_key_stand(sqlite_reg, models, tmp_path):
    """Revocation undoes only approvals that rested on the key (imported ones), not a reviewer's own."""
    priv, pub = ec_keys(tmp_path)
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    kid = sqlite_reg.trust(pub).key_id
    sqlite_reg.approve("helpful", "reviewed here", kind="vector", sign_key=priv)
    assert remove_trusted(sqlite_reg, kid)["demoted"] == []
    assert sqlite_reg.vector("helpful").status == "approved"


def test_a_downgrade_keeps_revoked_keys_revoked(sqlite_reg, tmp_path):
    from registry.db import engine as dbmod
    from registry.db.models import TrustedKey
    from registry.db.revision import SCHEMA_HEAD
    from registry.governance.revocation import list_revoked

    _priv, pub = ec_keys(tmp_path)
    kid = sqlite_reg.trust(pub).key_id
    remove_trusted(sqlite_reg, kid, "rotated")
    dbmod.downgrade(sqlite_reg.engine, "0003")
    # an older client reads trusted_keys only: the key is not there; its row is kept aside
    assert "revoked_keys" in inspect(sqlite_reg.engine).get_table_names()
    with sqlite_reg.Session() as s:
        assert s.scalar(select(TrustedKey).where(TrustedKey.key_id == kid)) is None
    dbmod.upgrade(sqlite_reg.engine)
    assert dbmod.current_revision(sqlite_reg.engine) == SCHEMA_HEAD
    assert [(k.key_id, k.reason) for k in list_revoked(sqlite_reg)] == [(kid, "rotated")]
