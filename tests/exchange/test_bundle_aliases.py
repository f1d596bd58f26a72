"""Bundles say what they leave behind, and aliases travel with a signed approval (issue 34, item 19).

`export` names what will not travel (unsigned approvals land as draft, aliases of unsigned
recipes are dropped); `registry sign REF --key` signs an approval given earlier without a key,
under the same rules as `approve`; an alias whose recipe approval is signed and verifies is
recreated by `import-bundle` (never moved where it exists, never a protected one by another).
"""

from __future__ import annotations

import json

import pytest

from registry.errors import AlreadyExists, GovernanceRefused, InvalidTransition
from registry.exchange.bundle import export_bundle, import_bundle
from registry.governance.policy import set_policy
from tests.test_security import MIX, ec_keys


@pytest.fixture
def released(sqlite_reg, models, tmp_path):
    """mix@v1 approved (unsigned, as most teams start) and aliased prod; the keys."""
    reg = sqlite_reg
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    reg.add_recipe(MIX)
    for v in ("helpful", "harmless"):
        reg.approve(v, "reviewed", kind="vector")
    reg.approve("mix@v1", "evals passed")
    reg.set_alias("mix@v1", "prod")
    priv, pub = ec_keys(tmp_path)
    return reg, priv, pub


def target(tmp_path, models, pub, actor: str = "tester"):
    from registry import Registry

    t = Registry.init(tmp_path / "target")
    t.actor = actor
    t.add_base("tiny", str(models["base"]))
    t.trust(pub)
    return t


def test_export_names_what_will_not_travel_and_sign_lets_aliases_travel(released, cli, tmp_path, models):
    reg, priv, pub = released
    code, out, err = cli("export", "mix@prod", "--out", tmp_path / "unsigned.bundle")
    assert code == 0, err
    assert "will not travel:" in out
    assert (
        "approval of recipe mix@v1: not signed, it lands as draft (sign it: registry sign mix@v1 --key KEY)"
        in out
    )
    assert "approval of vector helpful@v1: not signed" in out and "registry sign helpful@v1 --vector" in out
    assert "alias mix@prod: its recipe's approval is not signed" in out

    # approve --sign-key on an approved version points at the new command
    code, _, err = cli("approve", "mix@v1", "--reason", "again", "--sign-key", priv)
    assert code == 1 and "already approved: sign its approval with `registry sign mix@v1 --key KEY`" in err
    code, out, err = cli("sign", "mix@v1", "--key", priv)
    assert code == 0, err
    assert "signed the approval of recipe mix@v1 with key" in out
    code, _, err = cli("sign", "mix@v1", "--key", priv)
    assert code == 1 and "already signed by key" in err
    [event] = [e for e in reg.log("mix@v1") if e.action == "recipe.signed"]
    assert event.actor == "tester" and len(event.details["signed_by"]) == 64

    data = json.loads(cli("--json", "export", "mix@prod", "--out", tmp_path / "signed.bundle")[1])
    assert data["left_behind"] == []  # the recipe's signature vouches for its vectors' digests
    t = target(tmp_path, models, pub)
    report = import_bundle(t, tmp_path / "signed.bundle")
    assert report["aliases"] == ["mix@prod"] and report["aliases_skipped"] == []
    assert t.recipe("mix@prod").ref == "mix@v1" and t.recipe("mix@v1").status == "approved"
    assert [e.details["bundle"] for e in t.log("mix@prod") if e.action == "recipe.alias"]
    # the unsigned bundle's alias did not travel: a fresh target has no mix@prod from it
    t2 = target(tmp_path / "two", models, pub)
    r2 = import_bundle(t2, tmp_path / "unsigned.bundle")
    assert r2["aliases"] == [] and t2.recipe("mix@v1").status == "draft"
    assert "prod" not in {a.alias for a in t2.aliases("mix")}


def test_sign_follows_the_approve_rules(released, tmp_path):
    reg, priv, _ = released
    reg.add_recipe({**MIX, "terms": MIX["terms"][:1]})  # mix@v2, a draft
    with pytest.raises(InvalidTransition, match="mix@v2 is draft: only an approved version can be signed"):
        reg.sign("mix@v2", priv)
    set_policy(reg, "four_eyes", True)  # tester created mix@v1: four-eyes refuses its own signature
    with pytest.raises(GovernanceRefused, match="four-eyes rule: tester created recipe mix@v1"):
        reg.sign("mix@v1", priv)
    assert not [e for e in reg.log("mix@v1") if e.action == "recipe.signed"]
    reg.actor = "bob"
    obj, kid = reg.sign("mix@v1", priv)
    assert obj.ref == "mix@v1" and len(kid) == 64
    with pytest.raises(AlreadyExists):
        reg.sign("mix@v1", priv)


def test_imported_aliases_never_move_one_here_nor_a_protected_one(released, tmp_path, models):
    reg, priv, pub = released
    reg.set_alias("mix@v1", "canary")
    reg.sign("mix@v1", priv)
    export_bundle(reg, ["mix@prod"], tmp_path / "b.bundle")
    t = target(tmp_path, models, pub)
    set_policy(t, "protected_aliases.prod", ["carol"])  # tester may not create prod here
    report = import_bundle(t, tmp_path / "b.bundle")
    assert report["aliases"] == ["mix@canary"]
    assert report["aliases_skipped"] == ["mix@prod: alias prod is protected here (only carol)"]
    assert {a.alias for a in t.aliases("mix")} == {"canary"}
