"""Authority (issue 31): accounts, trusted keys, the policy and `--force` are policy-admin acts
on every path, and the table of privileged commands in docs/security.md is walked command by
command, each run by someone who lacks the authority it names.

The non-admin is the login running the tests, as the authenticating system names it (the OS
user on SQLite, `postgres` on PostgreSQL); `lead`, a declared name, is the only policy admin.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from registry.db.models import Account, Alias, AuditEvent, Meta, RevokedKey, TrustedKey, Vector
from registry.db.outbox import Webhook, WebhookDelivery
from registry.db.policy import POLICY_IN_DB
from registry.errors import GovernanceRefused
from registry.governance.policy import set_policy
from registry.governance.revocation import remove_trusted
from tests.test_security import ec_keys

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
TABLE = "### Privileged commands and the authority each needs"


@dataclass
class Team:
    home: Path
    login: str  # the authenticated account of this process: not a policy admin
    key_id: str  # trusted by lead
    other_key: Path  # a public key nobody trusts yet


def login_of(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql") else pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def team(home, db_url, models, tmp_path, monkeypatch) -> Team:
    """lead (declared) is the only admin and created everything; four-eyes on, prod protected
    for lead and the login, one reviewer account, one trusted key."""
    from registry import Registry
    from registry.console.accounts import add_user

    Registry.init(home, db=db_url, policy={"admins": ["lead"], "allow_declared_actor": True}).close()
    with Registry.open(home, actor="lead") as lead:
        lead.add_base("tiny", str(models["base"]))
        lead.import_vector("helpful", "tiny", models["plus"])
        lead.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
        key_id = lead.trust(ec_keys(tmp_path)[1]).key_id
        add_user(lead, "rev", "reviewer")
        set_policy(lead, "four_eyes", True)
        set_policy(lead, "protected_aliases.prod", ["lead", login_of(db_url)])
    (tmp_path / "other").mkdir()
    monkeypatch.delenv("REGISTRY_ACTOR")  # from here on, the login acts as itself
    return Team(home, login_of(db_url), key_id, ec_keys(tmp_path / "other")[1])


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(_main(), [str(a) for a in args], input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _main():
    from registry.cli import main

    return main


def refused(code: int, out: str, err: str, fragment: str) -> None:
    """Exit non-zero, nothing on stdout, one line on stderr that says why."""
    assert code != 0 and out == "", (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err


def opened(team: Team, actor: str | None = None):
    from registry import Registry

    return Registry.open(team.home, actor=actor)


def accounts(team: Team) -> dict[str, tuple[str, str | None]]:
    with opened(team) as reg, reg.Session() as s:
        return {a.name: (a.role, a.password_hash) for a in s.scalars(select(Account))}


def refusals(team: Team) -> list[tuple[str, str, str]]:
    with opened(team) as reg:
        return refused_rows(reg)


def refused_rows(reg) -> list[tuple[str, str, str]]:
    return [(e.action, e.object, e.actor) for e in reg.log() if e.action.startswith("refused.")]


def test_accounts_are_managed_by_policy_admins_only(team, monkeypatch):
    """Issue 31.2: a non-admin created an admin account, reset the lead's password and
    removed accounts. Now each is refused in one line, audited, and changes nothing."""
    before = accounts(team)
    need = f"only a policy admin (lead) may manage console accounts, not {team.login}"
    refused(*run("--json", "user", "add", "eve", "--role", "admin"), need)
    refused(*run("user", "passwd", "rev", "--password-stdin", input="a long passphrase\n"), need)
    refused(*run("user", "remove", "rev"), need)
    assert accounts(team) == before and before["rev"] == ("reviewer", None)
    assert [r for r in refusals(team) if r[1].startswith("account:")] == [
        ("refused.account.add", "account:eve", team.login),
        ("refused.account.password", "account:rev", team.login),
        ("refused.account.remove", "account:rev", team.login),
    ]
    # the admin still manages them
    monkeypatch.setenv("REGISTRY_ACTOR", "lead")
    code, out, err = run("--json", "user", "add", "eve", "--role", "admin")
    assert code == 0 and json.loads(out)["role"] == "admin", err
    assert run("user", "passwd", "rev", "--password-stdin", input="a long passphrase\n")[0] == 0
    assert run("user", "remove", "eve")[0] == 0
    after = accounts(team)
    assert set(after) == {"rev"} and after["rev"][1].startswith("scrypt$")


def test_the_library_refuses_account_management_to_a_non_admin(team):
    """Issue 31.2 on the library path: the same rule as the CLI, in the functions themselves."""
    from registry.console.accounts import add_user, remove_user, set_password

    before = accounts(team)
    need = f"only a policy admin (lead) may manage console accounts, not {team.login}"
    with opened(team) as reg:
        for act in (
            lambda: add_user(reg, "eve", "admin"),
            lambda: set_password(reg, "rev", "a long passphrase"),
            lambda: remove_user(reg, "rev"),
        ):
            with pytest.raises(GovernanceRefused, match=re.escape(need)):
                act()
    assert accounts(team) == before


def test_a_console_account_cannot_take_a_login_name(team, monkeypatch):
    """Issue 31.2: an account named like a login acts in the console with that login's rights
    (four-eyes, admins, protected aliases). Even an admin cannot create or re-password one."""
    from registry.console.accounts import add_user

    with opened(team) as reg, reg.Session.begin() as s:  # a login of another host, seen at work
        s.add(AuditEvent(actor="zoe", action="vector.import", object="x@v1", details={},
                         actor_source="db-login", authenticated_as="zoe"))  # fmt: skip
    monkeypatch.setenv("REGISTRY_ACTOR", "lead")
    for name in (team.login, "zoe"):
        refused(*run("user", "add", name, "--role", "admin"), "a console account cannot take the name")
    with opened(team, "lead") as lead:
        add_user(lead, "zoe", "reviewer")  # made before the rule, through the library
    refused(
        *run("user", "passwd", "zoe", "--password-stdin", input="a long passphrase\n"),
        "zoe names an existing database login: a console account cannot take the name",
    )
    assert accounts(team)["zoe"] == ("reviewer", None) and team.login not in accounts(team)
    assert ("refused.account.add", f"account:{team.login}", "lead") in refusals(team)
    # a name that is nobody's login is fine
    assert run("user", "add", "zoe-console", "--role", "reviewer")[0] == 0


def test_trust_add_and_remove_need_a_policy_admin(team, monkeypatch):
    """Issue 31.3: a non-admin trusted her own key and revoked the team's release key."""

    def keys() -> tuple[set[str], set[str]]:
        with opened(team) as reg, reg.Session() as s:
            return set(s.scalars(select(TrustedKey.key_id))), set(s.scalars(select(RevokedKey.key_id)))

    before = keys()
    assert before == ({team.key_id}, set())
    refused(*run("trust", "add", team.other_key), "only a policy admin (lead) may trust a signing key")
    refused(*run("trust", "remove", team.key_id[:12]), "only a policy admin (lead) may revoke a trusted key")
    with opened(team) as me:
        with pytest.raises(GovernanceRefused, match="may trust a signing key"):
            me.trust(team.other_key)
        with pytest.raises(GovernanceRefused, match="may revoke a trusted key"):
            remove_trusted(me, team.key_id, "mine now")
    assert keys() == before
    actions = [a for a, obj, who in refusals(team) if obj.startswith("key:") and who == team.login]
    assert actions == ["refused.trust.add", "refused.trust.remove"] * 2
    # the admin's acts are audited under the admin's name
    monkeypatch.setenv("REGISTRY_ACTOR", "lead")
    assert run("trust", "add", team.other_key)[0] == 0
    assert run("trust", "remove", team.key_id, "--reason", "rotated")[0] == 0
    with opened(team) as reg:
        done = [(e.action, e.actor) for e in reg.log() if e.action in {"trust.add", "trust.remove"}]
    assert done == [("trust.add", "lead"), ("trust.add", "lead"), ("trust.remove", "lead")]


def test_alias_force_needs_a_policy_admin_on_cli_and_library(team, monkeypatch):
    """Issue 31.9: a reviewer listed for `prod` pointed it at a draft recipe over a draft
    vector with `--force`, which the console kept for admins but the CLI gave to everyone."""
    need = f"only a policy admin (lead) may point an alias at a version that is not approved (--force), not {team.login}"
    for alias in ("prod", "staging"):
        refused(*run("recipe", "alias", "mix@v1", alias, "--force"), need)
        with opened(team) as me, pytest.raises(GovernanceRefused, match=re.escape(need)):
            me.set_alias("mix@v1", alias, force=True)
    with opened(team) as reg, reg.Session() as s:
        assert list(s.scalars(select(Alias))) == []
    assert [a for a, obj, _ in refusals(team) if a == "refused.recipe.alias"] == ["refused.recipe.alias"] * 4
    monkeypatch.setenv("REGISTRY_ACTOR", "lead")
    code, out, err = run("recipe", "alias", "mix@v1", "staging", "--force")
    assert code == 0 and out.strip() == "mix@staging -> mix@v1", err


# -- the table in docs/security.md, walked -----------------------------------------------------
def _doc_rows() -> dict[str, str]:
    """Command cell -> required-authority cell of the privileged-commands table."""
    after = DOC.read_text().split(TABLE, 1)[1]
    table = re.search(r"^\|.*?(?=\n\n)", after, re.M | re.S).group(0).splitlines()
    assert table[0].startswith("| Command | Required authority |")
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = cells[1]
    return rows


def _state(team: Team, reg) -> dict:
    """Everything a privileged command could change, to check a refusal changed nothing."""
    with reg.Session() as s:
        return {
            "policy": reg.policy().as_dict(),
            "accounts": sorted((a.name, a.role, a.password_hash) for a in s.scalars(select(Account))),
            "trusted": sorted(s.scalars(select(TrustedKey.key_id))),
            "revoked": sorted(s.scalars(select(RevokedKey.key_id))),
            "aliases": sorted((a.recipe_name, a.alias, a.recipe_id) for a in s.scalars(select(Alias))),
            "status": sorted((v.ref, v.status) for v in reg.vectors()) + [(r.ref, r.status) for r in reg.recipes()],
            "archived": sorted(s.scalars(select(Vector.name).where(Vector.archived_at.is_not(None)))),
            "toml": (team.home / "registry.toml").read_text(),
            "adopted": s.get(Meta, POLICY_IN_DB) is not None,
            "webhooks": sorted(s.scalars(select(Webhook.name))),
            "deliveries": sorted(s.scalars(select(WebhookDelivery.id))),
        }  # fmt: skip


def _pre_policy(team: Team) -> None:
    """As `db upgrade` leaves a database from before team policy: not adopted yet, and this
    home's registry.toml still holding its old [governance] section."""
    with opened(team) as reg, reg.Session.begin() as s:
        s.delete(s.get(Meta, POLICY_IN_DB))
    path = team.home / "registry.toml"
    path.write_text(path.read_text() + "[governance]\nfour_eyes = false\n")


def test_every_privileged_command_is_refused_without_its_authority(team, models):
    with opened(team) as me:
        me.import_vector("mine", "tiny", models["plus2"])  # the login's own work
        me.import_vector("orphan", "tiny", models["minus"])
        with me.Session.begin() as s:  # as a pre-0003 row: nobody knows who created it
            s.execute(text("UPDATE vectors SET created_by = NULL WHERE name = 'orphan'"))
    with opened(team, "lead") as lead:
        set_policy(lead, "protected_aliases.prod", ["lead"])
        set_policy(lead, "allow_declared_actor", False)
    admin = "only a policy admin (lead) may"
    # command cell -> (argv, stdin, the refusal's words, setup)
    walk = {
        "`registry policy set KEY VALUE`": (["policy", "set", "four_eyes", "false"], None, admin, None),
        "`registry user add NAME --role ROLE`": (["user", "add", "eve", "--role", "admin"], None, admin, None),
        "`registry user passwd NAME`": (
            ["user", "passwd", "rev", "--password-stdin"], "a long passphrase\n", admin, None),
        "`registry user remove NAME`": (["user", "remove", "rev"], None, admin, None),
        "`registry trust add KEYFILE`": (["trust", "add", team.other_key], None, admin, None),
        "`registry trust remove KEY`": (["trust", "remove", team.key_id], None, admin, None),
        "`registry recipe alias REF ALIAS --force`": (
            ["recipe", "alias", "mix@v1", "staging", "--force"], None, admin, None),
        "`registry webhook add NAME --url URL`": (["webhook", "add", "ci", "--url", "https://example.com/"], None, admin, None),
        "`registry webhook list`": (["webhook", "list"], None, admin, None),
        "`registry webhook remove NAME`": (["webhook", "remove", "ci"], None, admin, None),
        "`registry webhook test NAME`": (["webhook", "test", "ci"], None, admin, None),
        "`registry webhook deliveries [NAME]`": (["webhook", "deliveries"], None, admin, None),
        "`registry webhook redeliver DELIVERY_ID`": (["webhook", "redeliver", "1"], None, admin, None),
        "`registry recipe alias REF ALIAS` (ALIAS protected)": (
            ["recipe", "alias", "mix@v1", "prod"], None, "alias prod is protected: only lead may move it", None),
        "`registry approve REF` (under `four_eyes`)": (
            ["approve", "mine", "--vector", "--reason", "lgtm"], None, f"four-eyes rule: {team.login} created", None),
        "`registry approve REF` (creator unknown)": (
            ["approve", "orphan", "--vector", "--reason", "lgtm"], None, "policy admin (lead) may approve it", None),
        "`registry archive REF --force` (needed where REF is approved, behind an alias, or named by a materialization's lock)": (
            ["archive", "--vector", "mine@v1", "--force"], None, admin, None),
        "`registry gc --force` (also collects archived vectors that are approved, aliased or named by a lock)": (
            ["gc", "--force"], None, admin, None),
        "`registry COMMAND --actor NAME` (or `REGISTRY_ACTOR`)": (
            ["approve", "mine", "--vector", "--reason", "lgtm", "--actor", "lead"], None,
            "actor 'lead' is declared", None),
        "`registry COMMAND` on a pre-policy database whose `registry.toml` holds `[governance]` / `[interference]`": (
            ["policy", "show"], None, "become the team policy only when a policy admin (lead) opens", _pre_policy),
    }  # fmt: skip
    rows = _doc_rows()
    assert set(rows) == set(walk), "docs/security.md's table and this walk must name the same commands"
    watcher = opened(team)  # opened before the pre-policy step, which would refuse a new open
    for command, (argv, stdin, words, setup) in walk.items():
        if setup is not None:
            setup(team)
        before, audited = _state(team, watcher), len(refused_rows(watcher))
        code, out, err = run(*argv, input=stdin)
        assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, (command, code, out, err)
        assert words in err, (command, rows[command], err)
        assert _state(team, watcher) == before, command
        assert len(refused_rows(watcher)) == audited + 1, command
    watcher.close()
