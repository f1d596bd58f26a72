"""Migrations keep governance data (issue 24.5): a downgrade/upgrade cycle used to drop
creators, signatures and trusted keys, and a NULL creator then let anyone approve."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from registry.db import engine as dbmod
from registry.db.revision import SCHEMA_HEAD
from registry.errors import GovernanceRefused
from registry.governance.policy import set_policy


def test_downgrade_upgrade_cycle_keeps_four_eyes(loaded, home, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from registry import Registry
    from registry.governance.signing import list_trusted

    pub = tmp_path / "release.pub"
    pub.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    set_policy(loaded, "four_eyes", True)
    loaded.trust(pub)
    dbmod.downgrade(loaded.engine, "0002")
    dbmod.upgrade(loaded.engine)
    assert dbmod.current_revision(loaded.engine) == SCHEMA_HEAD
    me = Registry.open(home)
    assert me.vector("helpful@v1").created_by == "tester"
    assert me.policy().four_eyes is True and len(list_trusted(me)) == 1
    with pytest.raises(GovernanceRefused, match="four-eyes rule: tester created vector helpful@v1"):
        me.approve("helpful", "mine", kind="vector")
    Registry.open(home, actor="alice").approve("helpful", "reviewed", kind="vector")


def test_unknown_creator_needs_a_policy_admin(loaded, home):
    from registry import Registry

    set_policy(loaded, "four_eyes", True)
    with loaded.engine.begin() as conn:  # a row written by a client from before creators
        conn.execute(text("UPDATE vectors SET created_by = NULL"))
    with pytest.raises(
        GovernanceRefused, match=r"nobody knows who created vector helpful@v1; only a policy admin \(tester\)"
    ):
        Registry.open(home, actor="alice").approve("helpful", "who made this?", kind="vector")
    assert loaded.vector("helpful@v1").status == "draft"
    loaded.approve("helpful", "admin checked its lineage", kind="vector")
    assert loaded.vector("helpful@v1").status == "approved"
