"""A registry the console serves, on SQLite and PostgreSQL: one base, two draft vectors and a
draft recipe created by alice, four-eyes on, `prod` protected (only carol moves it), carol a
policy admin, and one account per role."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROLES = {"victor": "viewer", "bob": "reviewer", "alice": "reviewer", "carol": "admin"}
PASSWORD = "correct horse battery"


@dataclass
class Console:
    reg: object
    home: Path
    tokens: dict[str, str]
    opened: list = field(default_factory=list)

    def client(self, base_url: str = "http://testserver", **app_options):
        """A TestClient over a fresh app (its own registry, as another serve process would have)."""
        from fastapi.testclient import TestClient

        from registry import Registry
        from registry.console.app import create_app

        opened = Registry.open(self.home)
        self.opened.append(opened)
        return TestClient(create_app(opened, **app_options), base_url=base_url)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def govern(home: Path) -> None:
    """Four-eyes on, `prod` protected: team policy in the database, set by its admin (tester)."""
    from registry import Registry
    from registry.governance.policy import set_policy

    with Registry.open(home, actor="tester") as admin:
        set_policy(admin, "four_eyes", True)
        set_policy(admin, "protected_aliases.prod", ["carol"])
        # forcing an alias is a policy admin's act on every path: carol is one, bob is not
        set_policy(admin, "admins", ["carol", "tester"])


@pytest.fixture
def console(reg, models, home, monkeypatch) -> Console:
    from registry.console.accounts import add_user, set_password

    reg.actor = "alice"
    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    reg.add_recipe(
        {
            "name": "mix",
            "base": "tiny",
            "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": 0.5}],
        }
    )
    govern(home)
    reg.actor = "tester"  # a policy admin: accounts are an admin's act on every path
    tokens = {}
    for name, role in ROLES.items():
        tokens[name] = add_user(reg, name, role)[1]
        set_password(reg, name, PASSWORD)
    c = Console(reg, home, tokens)
    yield c
    for r in c.opened:
        r.close()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, name: str, password: str = PASSWORD):
    form = client.get("/login")
    return client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "name": name, "password": password, "next": "/"},
        follow_redirects=False,
    )
