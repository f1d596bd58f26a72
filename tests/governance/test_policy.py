"""Team policy in the database (issue 24.3): shown, changed by admins only, audited;
registry.toml refuses unknown keys and no longer holds rules a user could edit away."""

from __future__ import annotations

import json

import pytest

from registry.errors import GovernanceRefused, RegistryError
from registry.governance.policy import set_policy


def test_policy_show_and_set_by_admin_only(sqlite_reg, cli, monkeypatch):
    shown = json.loads(cli("--json", "policy", "show")[1])
    assert shown["four_eyes"] is False and shown["admins"] == ["tester"]
    code, out, err = cli("policy", "set", "four_eyes", "true")
    assert code == 0 and out.strip() == "policy four_eyes: false -> true (tester)", err
    code, _, err = cli("policy", "set", "protected_aliases.prod", '["alice"]')
    assert code == 0, err
    assert sqlite_reg.policy().protected_aliases == {"prod": ["alice"]}
    monkeypatch.setenv("REGISTRY_ACTOR", "mallory")  # declared actors are allowed in this registry
    code, out, err = cli("policy", "set", "four_eyes", "false")
    assert code != 0 and err.strip() == (
        "Error: only a policy admin (tester) may change the team policy, not mallory"
    )
    assert sqlite_reg.policy().four_eyes is True
    events = [(e.action, e.object, e.actor, e.details.get("to")) for e in sqlite_reg.log()]
    assert ("policy.set", "four_eyes", "tester", True) in events
    assert ("refused.policy.set", "four_eyes", "mallory", None) in events


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("four_eye", "true", "unknown policy key 'four_eye'"),
        ("four_eyes", "yes-please", "policy four_eyes must be true or false"),
        ("interference_policy", "maybe", "interference policy must be warn, refuse or off"),
        ("interference_threshold", "2", "interference threshold must be in [0, 1]"),
        ("admins", "[]", "policy admins cannot be empty"),
        ("protected_aliases.v3", '["a"]', "it would read as a version number"),
    ],
)
def test_bad_policy_values_are_one_line(sqlite_reg, cli, key, value, message):
    code, out, err = cli("policy", "set", key, value)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_interference_policy_comes_from_the_database(sqlite_reg, models):
    from registry import Registry
    from registry.errors import InterferenceRefused

    set_policy(sqlite_reg, "interference_policy", "refuse")
    set_policy(sqlite_reg, "interference_threshold", 0.0)
    again = Registry.open(sqlite_reg.home)
    assert again.config.interference.action == "refuse"
    again.import_vector("a", "tiny", models["plus"])
    with pytest.raises(InterferenceRefused, match="policy: refuse"):
        again.import_vector("b", "tiny", models["plus"])


@pytest.mark.parametrize(
    "text,message",
    [
        ("[governance]\nfour_eye = true\n", "unknown key governance.four_eye"),
        ('[governance.protected_alias]\nprod = ["alice"]\n', "unknown key governance.protected_alias"),
        ("four_eyes = true\n", "unknown key 'four_eyes'"),
    ],
)
def test_registry_toml_typos_are_refused(sqlite_reg, cli, text, message):
    path = sqlite_reg.home / "registry.toml"
    path.write_text(path.read_text() + text)
    code, out, err = cli("vector", "list")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_governance_in_registry_toml_is_refused_once_policy_is_in_the_database(sqlite_reg, cli):
    """An edit of registry.toml cannot switch four-eyes off (or on) behind the admins' back."""
    from registry import Registry

    set_policy(sqlite_reg, "four_eyes", True)
    path = sqlite_reg.home / "registry.toml"
    path.write_text(path.read_text() + "[governance]\nfour_eyes = false\n")
    with pytest.raises(RegistryError, match=r"\[governance\]/\[interference\] are no longer read"):
        Registry.open(sqlite_reg.home)
    assert sqlite_reg.policy().four_eyes is True


def test_pre_0004_registry_toml_moves_into_the_database(sqlite_reg, models):
    """A registry from before migration 0004: its registry.toml settings move in, once."""
    from sqlalchemy import text

    from registry import Registry
    from registry.db import engine as dbmod

    sqlite_reg.import_vector("h", "tiny", models["plus"])
    dbmod.downgrade(sqlite_reg.engine, "0003")
    with sqlite_reg.engine.begin() as conn:  # as 0003 left it: no policy (bar the test's), no mark
        conn.execute(text("DELETE FROM team_policy WHERE key != 'allow_declared_actor'"))
        conn.execute(text("DELETE FROM registry_meta WHERE key = 'policy_in_db'"))
    path = sqlite_reg.home / "registry.toml"
    path.write_text(
        path.read_text() + '[interference]\npolicy = "refuse"\nthreshold = 0.5\n'
        '[governance]\nfour_eyes = true\n[governance.protected_aliases]\nprod = ["alice"]\n'
    )
    again = Registry.open(sqlite_reg.home)
    p = again.policy()
    assert (p.four_eyes, p.protected_aliases, p.interference_policy, p.interference_threshold) == (
        True,
        {"prod": ["alice"]},
        "refuse",
        0.5,
    )
    assert p.admins == ["tester"]  # migration 0004: the account that ran init
    assert "[governance]" not in path.read_text() and "[interference]" not in path.read_text()
    assert [e.action for e in again.log()][-1] == "policy.imported"
    with pytest.raises(GovernanceRefused, match="four-eyes rule: tester created vector h@v1"):
        again.approve("h", "mine", kind="vector")
