"""Identity (issue 24.3): the actor is the account the authenticating system vouches for.

A declared name (REGISTRY_ACTOR, --actor) is accepted only where the team policy says so,
and then recorded as declared (audit_events.actor_source) beside the authenticated account.
"""

from __future__ import annotations

import json

import pytest

from registry.db.actor_identity import os_user
from registry.errors import GovernanceRefused, IdentityRefused
from registry.governance.policy import set_policy


@pytest.fixture
def strict(home, db_url, models, monkeypatch):
    """A registry whose policy keeps its default: declared actors refused, four-eyes on."""
    from registry import Registry

    monkeypatch.delenv("REGISTRY_ACTOR")
    r = Registry.init(home, db=db_url, policy={"allow_declared_actor": False, "four_eyes": True})
    r.add_base("tiny", str(models["base"]))
    r.import_vector("helpful", "tiny", models["plus"])
    yield r
    r.close()


def login(reg) -> str:
    return "postgres" if reg.engine.url.get_backend_name() == "postgresql" else os_user()


def test_actor_is_the_authenticated_account(strict):
    who = login(strict)  # PostgreSQL: session_user; SQLite: the OS user
    assert strict.actor == who and strict.identity.source in {"db-login", "os"}
    assert strict.vector("helpful").created_by == who
    assert strict.policy().admins == [who]  # the first init user is admin
    sources = {(e.actor, e.actor_source, e.authenticated_as) for e in strict.log()}
    assert sources == {(who, strict.identity.source, who)}


def test_borrowed_name_cannot_approve_own_work(strict, home, monkeypatch):
    """The reported attack: REGISTRY_ACTOR=alice approves the creator's own vector."""
    from registry import Registry

    monkeypatch.setenv("REGISTRY_ACTOR", "alice")
    with pytest.raises(IdentityRefused, match=r"actor 'alice' is declared .* but you are authenticated as"):
        Registry.open(home)
    with pytest.raises(IdentityRefused, match="allow_declared_actor"):
        Registry.open(home, actor="alice")
    monkeypatch.delenv("REGISTRY_ACTOR")
    me = Registry.open(home)
    with pytest.raises(GovernanceRefused, match=f"four-eyes rule: {login(strict)} created vector helpful@v1"):
        me.approve("helpful", "mine", kind="vector")
    assert me.vector("helpful@v1").status == "draft"
    refused = [(e.action, e.actor, e.object) for e in me.log() if e.action.startswith("refused.")]
    assert refused[:2] == [("refused.identity", login(strict), "alice")] * 2


def test_declared_actor_allowed_by_policy_is_recorded_as_declared(strict, home):
    from registry import Registry

    set_policy(strict, "allow_declared_actor", True)
    alice = Registry.open(home, actor="alice")
    assert alice.identity.source == "declared"
    alice.approve("helpful", "reviewed", kind="vector")
    event = alice.log("helpful")[-1]
    assert event.actor == "alice" and event.action == "vector.approved"
    assert (event.actor_source, event.authenticated_as) == ("declared", login(strict))


def test_service_account_may_declare(strict, home):
    from registry import Registry

    set_policy(strict, "service_accounts", [login(strict)])
    bot = Registry.open(home, actor="carol")
    assert (bot.actor, bot.identity.source, bot.identity.authenticated_as) == (
        "carol",
        "declared",
        login(strict),
    )


def test_console_source_is_trusted_and_recorded(strict, home):
    """Only a caller holding an account's credential acts for it, as the console does with the
    request's token (issue 31.4); a bare `actor_source="console"` is refused."""
    from registry import Registry
    from registry.console.accounts import add_user
    from registry.db.console_grant import ConsoleGrant

    token = add_user(strict, "dana", "reviewer")[1]
    with Registry.open(home, console=ConsoleGrant("token", token)) as reviewer:
        reviewer.approve("helpful", "looked at it", kind="vector")
        event = reviewer.log("helpful")[-1]
    assert (event.actor, event.actor_source, event.authenticated_as) == ("dana", "console", login(strict))
    with pytest.raises(IdentityRefused, match="reserved for the review console"):
        Registry.open(home, actor="dana", actor_source="console")
    with pytest.raises(IdentityRefused, match="actor_source must be one of"):
        Registry.open(home, actor="dana", actor_source="trust-me")


def test_cli_actor_option_is_refused_without_policy(strict, cli):
    code, out, err = cli("approve", "helpful", "--vector", "--reason", "x", "--actor", "alice")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "actor 'alice' is declared" in err
    assert json.loads(cli("--json", "vector", "show", "helpful@v1")[1])["status"] == "draft"


def test_login_environment_variables_do_not_change_the_actor(strict, home, monkeypatch):
    """Issue 31.1: `LOGNAME=bob` (getpass reads it before the uid) approved the user's own
    vector as bob. The OS user is the real uid's name in the password database."""
    import os
    import pwd

    from registry import Registry

    real = pwd.getpwuid(os.getuid()).pw_name
    expected = "postgres" if strict.engine.url.get_backend_name() == "postgresql" else real
    assert strict.vector("helpful@v1").created_by == expected
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "bob")
    borrowed = Registry.open(home)
    assert (borrowed.actor, borrowed.identity.authenticated_as) == (expected, expected)
    with pytest.raises(GovernanceRefused, match=f"four-eyes rule: {expected} created vector helpful@v1"):
        borrowed.approve("helpful", "lgtm", kind="vector")
    assert borrowed.vector("helpful@v1").status == "draft"
    assert "bob" not in {e.actor for e in borrowed.log()} | {e.authenticated_as for e in borrowed.log()}
    borrowed.close()
