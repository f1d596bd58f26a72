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


def test_a_legacy_policy_is_adopted_by_an_admin_not_by_whoever_opens_first(reg, models, monkeypatch):
    """Issue 31.5: after `db upgrade` of a shared pre-policy database, the first client to open
    it made its own registry.toml (or the defaults) the team policy. Only an admin's open
    adopts; a non-admin's adopts nothing (SQLite and PostgreSQL)."""
    from sqlalchemy import text

    from registry import Registry
    from registry.db import engine as dbmod
    from registry.db.models import Meta, TeamPolicySetting
    from registry.db.policy import POLICY_IN_DB

    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("h", "tiny", models["plus"])  # created by tester, who ran init
    dbmod.downgrade(reg.engine, "0003")
    with reg.engine.begin() as conn:  # as 0003 left it: no policy (bar the test's), no mark
        conn.execute(text("DELETE FROM team_policy WHERE key != 'allow_declared_actor'"))
        conn.execute(text("DELETE FROM registry_meta WHERE key = 'policy_in_db'"))
    dbmod.upgrade(reg.engine)  # `registry db upgrade`: 0004 makes init's account the admin

    def pending() -> bool:
        with reg.Session() as s:
            return s.get(Meta, POLICY_IN_DB) is None and s.get(TeamPolicySetting, "four_eyes") is None

    path = reg.home / "registry.toml"
    plain = path.read_text()
    monkeypatch.setenv("REGISTRY_ACTOR", "mallory")  # a user, not an admin, opens first
    path.write_text(plain + "[governance]\nfour_eyes = false\n")
    with pytest.raises(
        GovernanceRefused,
        match=r"become the team policy only when a policy admin \(tester\) opens this registry, not mallory",
    ):
        Registry.open(reg.home)
    assert pending() and path.read_text() == plain + "[governance]\nfour_eyes = false\n"
    path.write_text(plain)  # nothing of hers to adopt: she works, and the defaults are not adopted
    Registry.open(reg.home).close()
    assert pending()
    monkeypatch.setenv("REGISTRY_ACTOR", "tester")
    path.write_text(plain + "[governance]\nfour_eyes = true\n")
    admin = Registry.open(reg.home)
    assert admin.policy().four_eyes is True and not pending() and path.read_text() == plain
    events = [(e.action, e.actor) for e in admin.log() if "policy.imported" in e.action]
    assert events == [("refused.policy.imported", "mallory"), ("policy.imported", "tester")]
    with pytest.raises(GovernanceRefused, match="four-eyes rule: tester created vector h@v1"):
        admin.approve("h", "mine", kind="vector")
    admin.close()


def test_concurrent_protected_alias_sets_both_land(reg, home, hold):
    """Issue 31.14: `policy set protected_aliases.X` read the map outside any lock, so two
    admins setting two aliases at once lost one silently (SQLite and PostgreSQL)."""
    import threading

    from registry import Registry

    set_policy(reg, "protected_aliases.dev", ["alice"])
    other = Registry.open(home)
    results: dict[str, object] = {}

    def setter(r, alias: str, who: list[str]) -> threading.Thread:
        def go() -> None:
            try:
                results[alias] = set_policy(r, f"protected_aliases.{alias}", who)
            except Exception as e:  # handed to the assertions below
                results[alias] = e

        t = threading.Thread(target=go)
        t.start()
        return t

    reached, release = hold("policy:read")
    a = setter(reg, "prod", ["alice"])
    assert reached.wait(30), "no pause between reading the alias map and writing it"
    b = setter(other, "staging", ["bob"])
    b.join(1.0)
    assert b.is_alive()  # waits for the lock instead of reading the map about to be replaced
    release.set()
    a.join(120)
    b.join(120)
    assert not any(isinstance(v, Exception) for v in results.values()), results
    want = {"dev": ["alice"], "prod": ["alice"], "staging": ["bob"]}
    assert reg.policy().protected_aliases == want
    sets = [
        (e.details["from"], e.details["to"]) for e in reg.log("protected_aliases") if e.action == "policy.set"
    ]
    assert sets[-2:] == [
        ({"dev": ["alice"]}, {"dev": ["alice"], "prod": ["alice"]}),
        ({"dev": ["alice"], "prod": ["alice"]}, want),
    ]
    other.close()
